// The steps of applying a batch of updates that need no table lock: decode
// the request, check versions, apply the updates to private copies.
// VariableTable::BatchUpdate locks, then commits what these produce.
#ifndef VARSCOPE_SERVER_TABLE_BATCH_UPDATE_H_
#define VARSCOPE_SERVER_TABLE_BATCH_UPDATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor.h"
#include "server/table/optimizers.h"
#include "server/table/variable.h"
#include "server/table/working_copy.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// One decoded update of a batch.
struct BatchOp {
  std::string name;
  std::optional<int64_t> expected_version;
  v1::Update::OpCase kind = v1::Update::OP_NOT_SET;
  Tensor tensor;  // the value, delta, rows or gradient
  std::optional<Tensor> indices;
  // (Spelled with the enum's full name: <arpa/nameser.h> defines ADD.)
  v1::Scatter::Mode mode = v1::Scatter_Mode_ADD;
  std::optional<OptimizerStep> optimizer;
};

// Decodes every update of `request`, moving its tensors out.
// INVALID_ARGUMENT for an empty batch, a bad name, tensor or optimizer, or
// an update without an operation.
absl::StatusOr<std::vector<BatchOp>> DecodeUpdates(
    v1::BatchUpdateRequest& request);

// A variable a batch involves: its state when the batch locked it, and the
// batch's copy of what it changes. Thread-compatible.
struct WorkingVariable {
  TableVariable* var;
  v1::StoredVariable meta;
  WorkingCopy copy;
  bool touched = false;
};
// By name: every variable of the batch, slots and optimizer inputs too.
using WorkingSet = std::map<std::string, WorkingVariable>;

// ABORTED if an update expects another version than its variable's.
absl::Status CheckVersions(const std::vector<BatchOp>& ops,
                           const WorkingSet& working);

// Applies `ops` in order to `working` (a later update of a variable sees
// the earlier ones), then multiplies the scalars optimizers advance once
// (Adam's beta powers). INVALID_ARGUMENT for an update that does not fit
// its variable: `working` is then to be dropped. REQUIRES: `working` holds
// every variable of `ops`, their slots and their optimizers' inputs.
absl::Status ApplyUpdates(std::vector<BatchOp>& ops, WorkingSet& working);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_BATCH_UPDATE_H_
