#include "common/learning_rate.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace varscope {
namespace {

absl::Status CheckDecaySteps(double decay_steps) {
  if (std::isfinite(decay_steps) && decay_steps > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("Invalid learning-rate schedule decay_steps: ", decay_steps,
                   " (must be positive)"));
}

}  // namespace

absl::Status ValidateSchedule(const v1::LearningRateSchedule& schedule) {
  using S = v1::LearningRateSchedule;
  switch (schedule.kind_case()) {
    case S::kExponentialDecay:
      return CheckDecaySteps(schedule.exponential_decay().decay_steps());
    case S::kPolynomialDecay:
      return CheckDecaySteps(schedule.polynomial_decay().decay_steps());
    case S::kCosineDecay:
      return CheckDecaySteps(schedule.cosine_decay().decay_steps());
    case S::kPiecewiseConstant: {
      const auto& p = schedule.piecewise_constant();
      if (p.boundaries_size() != p.values_size() - 1) {
        return absl::InvalidArgumentError(
            "The length of boundaries should be 1 less than the length of "
            "values");
      }
      for (int i = 1; i < p.boundaries_size(); ++i) {
        if (!(p.boundaries(i) > p.boundaries(i - 1))) {
          return absl::InvalidArgumentError(absl::StrCat(
              "The boundaries of a piecewise constant learning rate must "
              "increase: ",
              p.boundaries(i), " follows ", p.boundaries(i - 1)));
        }
      }
      return absl::OkStatus();
    }
    case S::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      "A learning-rate schedule needs one of exponential_decay, "
      "piecewise_constant, polynomial_decay, cosine_decay");
}

double DecayedLearningRate(const v1::LearningRateSchedule& schedule,
                           double learning_rate, double step) {
  using S = v1::LearningRateSchedule;
  switch (schedule.kind_case()) {
    case S::kExponentialDecay: {
      const auto& e = schedule.exponential_decay();
      double p = step / e.decay_steps();
      if (e.staircase()) p = std::floor(p);
      return learning_rate * std::pow(e.decay_rate(), p);
    }
    case S::kPiecewiseConstant: {
      // values[i] for boundaries[i-1] < step <= boundaries[i].
      const auto& p = schedule.piecewise_constant();
      const auto upper =
          std::lower_bound(p.boundaries().begin(), p.boundaries().end(), step);
      return p.values(static_cast<int>(upper - p.boundaries().begin()));
    }
    case S::kPolynomialDecay: {
      const auto& d = schedule.polynomial_decay();
      double decay_steps = d.decay_steps();
      if (d.cycle()) {
        // The first multiple of decay_steps at or above the step (1 at 0).
        decay_steps *= step == 0 ? 1.0 : std::ceil(step / decay_steps);
      } else {
        step = std::min(step, decay_steps);
      }
      return (learning_rate - d.end_learning_rate()) *
                 std::pow(1 - step / decay_steps, d.power()) +
             d.end_learning_rate();
    }
    case S::kCosineDecay: {
      const auto& c = schedule.cosine_decay();
      const double fraction = std::min(step, c.decay_steps()) / c.decay_steps();
      const double cosine = 0.5 * (1 + std::cos(std::numbers::pi * fraction));
      return learning_rate * ((1 - c.alpha()) * cosine + c.alpha());
    }
    case S::KIND_NOT_SET:
      break;
  }
  return learning_rate;
}

}  // namespace varscope
