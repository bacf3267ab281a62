// Server-side optimizer steps with TensorFlow's update rules
// (tf.compat.v1.train.*Optimizer and the Apply*/SparseApply* kernels).
#ifndef VARSCOPE_SERVER_OPTIMIZERS_H_
#define VARSCOPE_SERVER_OPTIMIZERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// A variable an optimizer keeps next to the one it trains.
struct SlotSpec {
  std::string suffix;   // the slot is `var/suffix`
  double initial = 0;   // every element starts at this value
  bool scalar = false;  // shape () instead of the variable's shape
};

// One optimizer's hyper-parameters with TensorFlow's defaults filled in.
// A value type; thread-compatible.
class OptimizerStep {
 public:
  // INVALID_ARGUMENT if no kind is set or a hyper-parameter is out of range
  // (non-finite or negative learning rate, decay outside [0, 1], ...).
  static absl::StatusOr<OptimizerStep> Resolve(const v1::Optimizer& spec);

  // The slots, in the order ApplyElements takes them: per-element slots
  // first, then scalar ones (Adam's beta powers).
  const std::vector<SlotSpec>& slots() const { return slots_; }
  int num_element_slots() const { return num_element_slots_; }

  // One step on n elements of `dtype`: var[i] and each element slot's [i]
  // change by grad[i]. `scalars` are the scalar slots' values as of this
  // step (as doubles). REQUIRES: IsFloating(dtype).
  void ApplyElements(DType dtype, int64_t n, char* var,
                     const std::vector<char*>& slots, const char* grad,
                     const std::vector<double>& scalars) const;

  // The scalar slots' values after a step (Adam: beta powers times beta).
  std::vector<double> NextScalars(const std::vector<double>& scalars) const;

 private:
  v1::Optimizer::KindCase kind_ = v1::Optimizer::KIND_NOT_SET;
  double lr_ = 0;
  double momentum_ = 0;
  bool nesterov_ = false;
  double beta1_ = 0.9, beta2_ = 0.999, epsilon_ = 1e-8;
  double decay_ = 0.9;
  bool centered_ = false;
  double lr_power_ = -0.5, l1_ = 0, l2_ = 0;
  std::vector<SlotSpec> slots_;
  int num_element_slots_ = 0;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_OPTIMIZERS_H_
