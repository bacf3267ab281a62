// Server-side optimizer steps with TensorFlow's update rules
// (tf.compat.v1.train.*Optimizer and the Apply*/SparseApply* kernels), and
// the constraints applied after them.
#ifndef VARSCOPE_SERVER_TABLE_OPTIMIZERS_H_
#define VARSCOPE_SERVER_TABLE_OPTIMIZERS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// A variable an optimizer keeps next to the one it trains: `var/suffix`,
// every element starting at `initial`.
struct SlotSpec {
  std::string suffix;
  double initial = 0;
};

// Reads a scalar variable of a batch: its value at that point of the batch.
using ScalarReader =
    absl::FunctionRef<absl::StatusOr<double>(const std::string& name)>;

// One optimizer's hyper-parameters with TensorFlow's defaults filled in.
// A value type; thread-compatible.
class OptimizerStep {
 public:
  // INVALID_ARGUMENT if no kind is set, a hyper-parameter is out of range
  // (non-finite or negative learning rate, decay outside [0, 1], ...), the
  // schedule is invalid (see ValidateSchedule) or Adam lacks its beta
  // powers.
  static absl::StatusOr<OptimizerStep> Resolve(const v1::Optimizer& spec);

  // The slots, in the order ApplyElements takes them, named after the
  // optimizer's name as TensorFlow names them.
  const std::vector<SlotSpec>& slots() const { return slots_; }

  // The scalar variables ReadInputs reads (a schedule's global step, Adam's
  // beta powers), unless their values were given.
  std::vector<std::string> InputVariables() const;

  // Takes this step's learning rate (from the schedule at the global step)
  // and beta powers, reading variables with `read`. Returns `read`'s error,
  // or INVALID_ARGUMENT when the schedule's rate at this step is invalid.
  // REQUIRES: called before ApplyElements.
  absl::Status ReadInputs(ScalarReader read);

  // One step on n elements of `dtype`: var[i] and each slot's [i] change by
  // grad[i]. REQUIRES: IsFloating(dtype).
  void ApplyElements(DType dtype, int64_t n, char* var,
                     const std::vector<char*>& slots, const char* grad) const;

  // One step with a sparse gradient, as TensorFlow's IndexedSlices: the
  // gradient rows of duplicate indices are summed, then each distinct row r
  // takes one step (ApplyElements on row_elems elements) on `var_row(r)` and
  // each slot s's `slot_row(s, r)`. `grad` holds rows.size() rows.
  // REQUIRES: IsFloating(dtype); ReadInputs called.
  void ApplyIndexedSlices(
      DType dtype, int64_t row_elems, absl::Span<const int64_t> rows,
      const char* grad, absl::FunctionRef<char*(int64_t row)> var_row,
      absl::FunctionRef<char*(size_t slot, int64_t row)> slot_row) const;

  // The scalar variables a batch multiplies once after all its updates, and
  // by what: Adam's beta powers when ReadInputs read them.
  std::vector<std::pair<std::string, double>> Advances() const;

 private:
  v1::Optimizer spec_;
  v1::Optimizer::KindCase kind_ = v1::Optimizer::KIND_NOT_SET;
  double lr_ = 0;
  double momentum_ = 0;
  bool nesterov_ = false;
  double beta1_ = 0.9, beta2_ = 0.999, epsilon_ = 1e-8;
  double beta1_power_ = 0, beta2_power_ = 0;
  double decay_ = 0.9;
  bool centered_ = false;
  double lr_power_ = -0.5, l1_ = 0, l2_ = 0;
  std::vector<SlotSpec> slots_;
};

// OK if `constraint` applies to a variable `name` of rank `rank`;
// INVALID_ARGUMENT naming the problem otherwise (no kind, an axis out of
// range or repeated, a negative or non-finite bound, a rate outside [0, 1]).
absl::Status ValidateConstraint(const v1::Constraint& constraint,
                                absl::string_view name, int rank);

// Applies `constraint` (Keras' formulas, in float64) to `data`, a tensor of
// `dtype` and `dims`, in place. REQUIRES: ValidateConstraint passed for
// dims.size(); IsFloating(dtype).
void ApplyConstraint(const v1::Constraint& constraint, DType dtype,
                     absl::Span<const int64_t> dims, char* data);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_OPTIMIZERS_H_
