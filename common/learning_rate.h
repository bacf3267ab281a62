// Learning rates that decay with a global step, as tf.compat.v1.train's
// exponential_decay, piecewise_constant, polynomial_decay and cosine_decay
// compute them. The server evaluates them inside an optimizer step; the
// Python client for logging.
#ifndef VARSCOPE_COMMON_LEARNING_RATE_H_
#define VARSCOPE_COMMON_LEARNING_RATE_H_

#include "absl/status/status.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope {

// OK for a schedule these functions evaluate; INVALID_ARGUMENT naming the
// problem otherwise: no kind, decay_steps not positive (or not finite),
// piecewise_constant values that are not one more than its boundaries
// (TensorFlow's text) or boundaries that do not increase.
absl::Status ValidateSchedule(const v1::LearningRateSchedule& schedule);

// The learning rate at global step `step` of `schedule` starting at
// `learning_rate`, TensorFlow's formula in float64.
// REQUIRES: ValidateSchedule(schedule).ok().
double DecayedLearningRate(const v1::LearningRateSchedule& schedule,
                           double learning_rate, double step);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_LEARNING_RATE_H_
