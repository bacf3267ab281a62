// TensorFlow's get_variable decided against the table's variables: what an
// existing variable answers, or what to create (DESIGN.md §1).
#ifndef VARSCOPE_SERVER_TABLE_GET_VARIABLE_PLAN_H_
#define VARSCOPE_SERVER_TABLE_GET_VARIABLE_PLAN_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "server/table/variable.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// The variables a GetVariable is to create: one, or the parts of a
// partitioned variable. Empty `parts` when nothing is to be created.
struct CreationPlan {
  struct Part {
    v1::StoredVariable meta;  // name, shape and slice set
    std::vector<int64_t> offset;
  };
  std::vector<Part> parts;
  std::vector<int64_t> full_dims;
  bool partitioned = false;
  DType dtype = v1::DT_FLOAT;
  v1::Initializer init;  // resolved from the default
  bool trainable = true;
  v1::Constraint constraint;
  std::optional<v1::Collections> collections;     // absent: the default
  std::optional<v1::EmbeddingOptions> embedding;  // set: an embedding variable
};

// The checks of a GetVariable request that need no table: INVALID_ARGUMENT
// for a bad name, reuse mode, dtype, shape, constraint or collections.
absl::Status ValidateGetVariable(const v1::GetVariableRequest& request);

// RESOURCE_EXHAUSTED if a new variable `name` of `dtype` and `dims`, or one
// of its rows, is over `max_bytes`.
absl::Status CheckNewVariable(absl::string_view name, DType dtype,
                              absl::Span<const int64_t> dims,
                              int64_t max_bytes);

// Decides a GetVariable that passed ValidateGetVariable against `vars`:
// the answer for an existing variable (plan->parts empty), the variables to
// create (in `plan`, with an empty answer), or an error as
// VariableTable::GetVariable documents (NOT_FOUND without the similar
// names). New variables are limited to `max_variable_bytes`.
absl::StatusOr<v1::GetVariableResponse> PlanGetVariable(
    const v1::GetVariableRequest& request, const VariableMap& vars,
    int64_t max_variable_bytes, CreationPlan* plan);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_GET_VARIABLE_PLAN_H_
