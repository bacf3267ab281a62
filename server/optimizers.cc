#include "server/optimizers.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace varscope::server {
namespace {

absl::Status Check(bool ok, absl::string_view what, double value) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("Invalid optimizer ", what, ": ", value));
}

bool Finite(double x) { return std::isfinite(x); }

template <typename T>
double Load(const char* p, int64_t i) {
  T v;
  memcpy(&v, p + i * sizeof(T), sizeof(T));
  return ToDouble(v);
}

template <typename T>
void Store(char* p, int64_t i, double value) {
  const T v = FromDouble<T>(value);
  memcpy(p + i * sizeof(T), &v, sizeof(T));
}

}  // namespace

absl::StatusOr<OptimizerStep> OptimizerStep::Resolve(
    const v1::Optimizer& spec) {
  OptimizerStep step;
  step.kind_ = spec.kind_case();
  step.lr_ = spec.learning_rate();
  VS_RETURN_IF_ERROR(
      Check(Finite(step.lr_) && step.lr_ >= 0, "learning_rate", step.lr_));
  switch (spec.kind_case()) {
    case v1::Optimizer::kGradientDescent:
      break;
    case v1::Optimizer::kMomentum:
      step.momentum_ = spec.momentum().momentum();
      step.nesterov_ = spec.momentum().use_nesterov();
      VS_RETURN_IF_ERROR(Check(Finite(step.momentum_) && step.momentum_ >= 0,
                               "momentum", step.momentum_));
      step.slots_ = {{"Momentum", 0}};
      break;
    case v1::Optimizer::kAdagrad: {
      const double init = spec.adagrad().has_initial_accumulator_value()
                              ? spec.adagrad().initial_accumulator_value()
                              : 0.1;
      VS_RETURN_IF_ERROR(
          Check(Finite(init) && init > 0, "initial_accumulator_value", init));
      step.slots_ = {{"Adagrad", init}};
      break;
    }
    case v1::Optimizer::kAdam: {
      const auto& a = spec.adam();
      if (a.has_beta1()) step.beta1_ = a.beta1();
      if (a.has_beta2()) step.beta2_ = a.beta2();
      if (a.has_epsilon()) step.epsilon_ = a.epsilon();
      VS_RETURN_IF_ERROR(
          Check(step.beta1_ >= 0 && step.beta1_ < 1, "beta1", step.beta1_));
      VS_RETURN_IF_ERROR(
          Check(step.beta2_ >= 0 && step.beta2_ < 1, "beta2", step.beta2_));
      VS_RETURN_IF_ERROR(Check(Finite(step.epsilon_) && step.epsilon_ >= 0,
                               "epsilon", step.epsilon_));
      step.slots_ = {{"Adam", 0},
                     {"Adam_1", 0},
                     {"Adam_beta1_power", step.beta1_, true},
                     {"Adam_beta2_power", step.beta2_, true}};
      break;
    }
    case v1::Optimizer::kRmsProp: {
      const auto& r = spec.rms_prop();
      if (r.has_decay()) step.decay_ = r.decay();
      step.momentum_ = r.momentum();
      step.epsilon_ = r.has_epsilon() ? r.epsilon() : 1e-10;
      step.centered_ = r.centered();
      VS_RETURN_IF_ERROR(
          Check(step.decay_ >= 0 && step.decay_ <= 1, "decay", step.decay_));
      VS_RETURN_IF_ERROR(Check(Finite(step.momentum_) && step.momentum_ >= 0,
                               "momentum", step.momentum_));
      VS_RETURN_IF_ERROR(Check(Finite(step.epsilon_) && step.epsilon_ >= 0,
                               "epsilon", step.epsilon_));
      step.slots_ = {{"RMSProp", 1}, {"RMSProp_1", 0}};
      if (step.centered_) step.slots_.push_back({"RMSProp_2", 0});
      break;
    }
    case v1::Optimizer::kFtrl: {
      const auto& f = spec.ftrl();
      if (f.has_learning_rate_power()) step.lr_power_ = f.learning_rate_power();
      const double init = f.has_initial_accumulator_value()
                              ? f.initial_accumulator_value()
                              : 0.1;
      step.l1_ = f.l1_regularization_strength();
      step.l2_ = f.l2_regularization_strength();
      VS_RETURN_IF_ERROR(
          Check(step.lr_power_ <= 0, "learning_rate_power", step.lr_power_));
      VS_RETURN_IF_ERROR(
          Check(Finite(init) && init > 0, "initial_accumulator_value", init));
      VS_RETURN_IF_ERROR(
          Check(step.l1_ >= 0, "l1_regularization_strength", step.l1_));
      VS_RETURN_IF_ERROR(
          Check(step.l2_ >= 0, "l2_regularization_strength", step.l2_));
      VS_RETURN_IF_ERROR(Check(step.lr_ > 0, "learning_rate", step.lr_));
      step.slots_ = {{"Ftrl", init}, {"Ftrl_1", 0}};
      break;
    }
    case v1::Optimizer::KIND_NOT_SET:
      return absl::InvalidArgumentError(
          "No optimizer given: set one of gradient_descent, momentum, "
          "adagrad, adam, rms_prop, ftrl");
  }
  for (const SlotSpec& slot : step.slots_) {
    step.num_element_slots_ += slot.scalar ? 0 : 1;
  }
  return step;
}

std::vector<double> OptimizerStep::NextScalars(
    const std::vector<double>& scalars) const {
  if (kind_ != v1::Optimizer::kAdam) return scalars;
  return {scalars[0] * beta1_, scalars[1] * beta2_};
}

void OptimizerStep::ApplyElements(DType dtype, int64_t n, char* var,
                                  const std::vector<char*>& slots,
                                  const char* grad,
                                  const std::vector<double>& scalars) const {
  VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    const double lr = lr_;
    // Adam's step size with bias correction, from the beta powers.
    const double adam_lr =
        kind_ == v1::Optimizer::kAdam
            ? lr * std::sqrt(1 - scalars[1]) / (1 - scalars[0])
            : 0;
    for (int64_t i = 0; i < n; ++i) {
      const double g = Load<T>(grad, i);
      double w = Load<T>(var, i);
      switch (kind_) {
        case v1::Optimizer::kGradientDescent:
          w -= lr * g;
          break;
        case v1::Optimizer::kMomentum: {
          const double a = Load<T>(slots[0], i) * momentum_ + g;
          Store<T>(slots[0], i, a);
          w -= nesterov_ ? g * lr + a * momentum_ * lr : lr * a;
          break;
        }
        case v1::Optimizer::kAdagrad: {
          const double a = Load<T>(slots[0], i) + g * g;
          Store<T>(slots[0], i, a);
          w -= lr * g / std::sqrt(a);
          break;
        }
        case v1::Optimizer::kAdam: {
          const double m = Load<T>(slots[0], i) * beta1_ + (1 - beta1_) * g;
          const double v = Load<T>(slots[1], i) * beta2_ + (1 - beta2_) * g * g;
          Store<T>(slots[0], i, m);
          Store<T>(slots[1], i, v);
          w -= adam_lr * m / (std::sqrt(v) + epsilon_);
          break;
        }
        case v1::Optimizer::kRmsProp: {
          const double ms =
              Load<T>(slots[0], i) * decay_ + (1 - decay_) * g * g;
          Store<T>(slots[0], i, ms);
          double denom = ms + epsilon_;
          if (centered_) {
            const double mg = Load<T>(slots[2], i) * decay_ + (1 - decay_) * g;
            Store<T>(slots[2], i, mg);
            denom -= mg * mg;
          }
          const double mom =
              Load<T>(slots[1], i) * momentum_ + lr * g / std::sqrt(denom);
          Store<T>(slots[1], i, mom);
          w -= mom;
          break;
        }
        case v1::Optimizer::kFtrl: {
          const double accum = Load<T>(slots[0], i);
          const double accum_new = accum + g * g;
          const double sigma =
              (std::pow(accum_new, -lr_power_) - std::pow(accum, -lr_power_)) /
              lr;
          const double linear = Load<T>(slots[1], i) + g - sigma * w;
          const double quadratic =
              std::pow(accum_new, -lr_power_) / lr + 2 * l2_;
          w = std::abs(linear) > l1_
                  ? ((linear > 0 ? l1_ : -l1_) - linear) / quadratic
                  : 0.0;
          Store<T>(slots[0], i, accum_new);
          Store<T>(slots[1], i, linear);
          break;
        }
        case v1::Optimizer::KIND_NOT_SET:
          break;
      }
      Store<T>(var, i, w);
    }
  });
}

}  // namespace varscope::server
