// varscope::Variable: a handle on one variable (or one partitioned variable)
// held by a server.
#ifndef VARSCOPE_CLIENT_VARIABLE_H_
#define VARSCOPE_CLIENT_VARIABLE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "common/tensor.h"
#include "common/variable_ops.h"

namespace varscope {

// Cheap to copy; copies share the last version seen. Thread-safe.
//
// A partitioned variable is read and updated part by part: each part's
// update is atomic, the whole is not (as in TensorFlow).
class Variable {
 public:
  // The variable a GetVariable call returned.
  Variable(std::shared_ptr<Client> client, v1::GetVariableResponse response);

  // The full name, without TensorFlow's ":0".
  const std::string& name() const { return state_->info.name(); }
  DType dtype() const { return state_->info.dtype(); }
  // The full shape.
  const std::vector<int64_t>& shape() const { return state_->dims; }
  bool trainable() const { return state_->info.trainable(); }
  // True if the GetVariable call that made this handle created it.
  bool created() const { return state_->created; }
  const v1::VariableInfo& info() const { return state_->info; }

  bool partitioned() const { return !state_->parts.empty(); }
  // The parts in order, for a partitioned variable; else empty.
  const std::vector<Variable>& parts() const { return state_->parts; }
  // Parts per axis, for a partitioned variable; else empty.
  std::vector<int64_t> partitions() const;

  // The highest version seen by this handle (for a partitioned variable, the
  // highest over its parts). 1 after creation; each update adds 1.
  int64_t version() const;

  // Records a version of this variable (of a part, for a partitioned one)
  // seen by a call made without the handle, e.g. a batch.
  void SeeVersion(int64_t version) const;
  // The client this handle calls.
  const std::shared_ptr<Client>& client() const { return state_->client; }

  // The current value (of a partitioned variable: its parts, read at once,
  // each as of its own moment). Errors as Client::Read (the first part's
  // error, in part order).
  absl::StatusOr<Tensor> Read() const;
  // Replaces the value. INVALID_ARGUMENT if the dtype or shape differ (or a
  // version is expected of a partitioned variable); errors as Client::Assign.
  absl::StatusOr<UpdateResult> Assign(Tensor value,
                                      const UpdateOptions& options = {}) const;
  // Adds `delta` element-wise on the server. Errors as Assign.
  absl::StatusOr<UpdateResult> AssignAdd(
      Tensor delta, const UpdateOptions& options = {}) const;
  // As above, sending the bytes from where they are (see
  // Client::Assign).
  absl::StatusOr<UpdateResult> Assign(SharedTensor value,
                                      const UpdateOptions& options = {}) const;
  absl::StatusOr<UpdateResult> AssignAdd(
      SharedTensor delta, const UpdateOptions& options = {}) const;

 private:
  struct State {
    std::shared_ptr<Client> client;
    v1::VariableInfo info;
    std::vector<int64_t> dims;
    bool created = false;
    std::vector<Variable> parts;
    std::atomic<int64_t> version{0};
  };

  explicit Variable(std::shared_ptr<State> state) : state_(std::move(state)) {}
  absl::Status CheckTensor(const SharedTensor& t, absl::string_view op) const;
  // Splits a full-shaped tensor into one tensor per part.
  std::vector<Tensor> Split(const SharedTensor& whole) const;
  // Assign, or AssignAdd when `add`; a partitioned variable part by part.
  absl::StatusOr<UpdateResult> Update(SharedTensor tensor,
                                      const UpdateOptions& options,
                                      bool add) const;

  std::shared_ptr<State> state_;
};

}  // namespace varscope

#endif  // VARSCOPE_CLIENT_VARIABLE_H_
