#include "server/table/optimizers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/learning_rate.h"
#include "common/names.h"
#include "common/status.h"
#include "server/table/tensor_ops.h"

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

// Long: one case per optimizer kind, each checking its own hyper-parameters
// next to TensorFlow's defaults; split, the checks would leave their kind.
absl::StatusOr<OptimizerStep> OptimizerStep::Resolve(
    const v1::Optimizer& spec) {
  OptimizerStep step;
  step.spec_ = spec;
  step.kind_ = spec.kind_case();
  step.lr_ = spec.learning_rate();
  VS_RETURN_IF_ERROR(
      Check(Finite(step.lr_) && step.lr_ >= 0, "learning_rate", step.lr_));
  if (spec.has_schedule()) {
    VS_RETURN_IF_ERROR(ValidateSchedule(spec.schedule()));
    if (spec.schedule().global_step().variable().empty() &&
        !spec.schedule().global_step().has_value()) {
      return absl::InvalidArgumentError(
          "A learning-rate schedule needs its global step");
    }
  }
  // The slots' initial values; they are named after the optimizer, the
  // second one `name_1`, ... (TensorFlow's slot creator uniquifies so).
  std::vector<double> initial;
  switch (spec.kind_case()) {
    case v1::Optimizer::kGradientDescent:
      break;
    case v1::Optimizer::kMomentum:
      step.momentum_ = spec.momentum().momentum();
      step.nesterov_ = spec.momentum().use_nesterov();
      VS_RETURN_IF_ERROR(Check(Finite(step.momentum_) && step.momentum_ >= 0,
                               "momentum", step.momentum_));
      initial = {0};
      break;
    case v1::Optimizer::kAdagrad: {
      const double init = spec.adagrad().has_initial_accumulator_value()
                              ? spec.adagrad().initial_accumulator_value()
                              : 0.1;
      VS_RETURN_IF_ERROR(
          Check(Finite(init) && init > 0, "initial_accumulator_value", init));
      initial = {init};
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
      for (const v1::ScalarInput* power :
           {&a.beta1_power(), &a.beta2_power()}) {
        if (power->variable().empty() && !power->has_value()) {
          return absl::InvalidArgumentError(
              "Adam needs its beta1_power and beta2_power (TensorFlow's "
              "non-slot variables): name them, or give their values");
        }
      }
      initial = {0, 0};
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
      // TensorFlow creates rms, then mg when centered, then momentum.
      initial = step.centered_ ? std::vector<double>{1, 0, 0}
                               : std::vector<double>{1, 0};
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
      initial = {init, 0};
      break;
    }
    case v1::Optimizer::KIND_NOT_SET:
      return absl::InvalidArgumentError(
          "No optimizer given: set one of gradient_descent, momentum, "
          "adagrad, adam, rms_prop, ftrl");
  }
  // The kinds' field numbers follow kOptimizerNames' order.
  static_assert(v1::Optimizer::kFtrl - v1::Optimizer::kGradientDescent + 1 ==
                std::size(kOptimizerNames));
  const absl::string_view name =
      spec.name().empty()
          ? kOptimizerNames[spec.kind_case() - v1::Optimizer::kGradientDescent]
          : spec.name();
  for (size_t i = 0; i < initial.size(); ++i) {
    step.slots_.push_back({SlotName(name, static_cast<int>(i)), initial[i]});
  }
  return step;
}

void OptimizerStep::ApplyIndexedSlices(
    DType dtype, int64_t row_elems, absl::Span<const int64_t> rows,
    const char* grad, absl::FunctionRef<char*(int64_t row)> var_row,
    absl::FunctionRef<char*(size_t slot, int64_t row)> slot_row) const {
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rows[a] < rows[b]; });
  const size_t row_bytes = static_cast<size_t>(row_elems) * DTypeSize(dtype);
  std::string summed(row_bytes, '\0');
  std::vector<char*> slot_rows(slots_.size());
  for (size_t i = 0; i < order.size();) {
    const int64_t row = rows[order[i]];
    memcpy(summed.data(), grad + order[i] * row_bytes, row_bytes);
    size_t j = i + 1;
    for (; j < order.size() && rows[order[j]] == row; ++j) {
      AddInPlace(dtype, grad + order[j] * row_bytes, summed.data(), row_elems);
    }
    for (size_t s = 0; s < slots_.size(); ++s) slot_rows[s] = slot_row(s, row);
    ApplyElements(dtype, row_elems, var_row(row), slot_rows, summed.data());
    i = j;
  }
}

std::vector<std::string> OptimizerStep::InputVariables() const {
  std::vector<std::string> names;
  auto add = [&](const v1::ScalarInput& input) {
    if (!input.has_value()) names.push_back(input.variable());
  };
  if (spec_.has_schedule()) add(spec_.schedule().global_step());
  if (kind_ == v1::Optimizer::kAdam) {
    add(spec_.adam().beta1_power());
    add(spec_.adam().beta2_power());
  }
  return names;
}

absl::Status OptimizerStep::ReadInputs(ScalarReader read) {
  auto value = [&](const v1::ScalarInput& input) -> absl::StatusOr<double> {
    if (input.has_value()) return input.value();
    return read(input.variable());
  };
  if (spec_.has_schedule()) {
    VS_ASSIGN_OR_RETURN(const double global_step,
                        value(spec_.schedule().global_step()));
    lr_ = DecayedLearningRate(spec_.schedule(), spec_.learning_rate(),
                              global_step);
    const bool positive = kind_ != v1::Optimizer::kFtrl || lr_ > 0;
    if (!(Finite(lr_) && lr_ >= 0 && positive)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Invalid optimizer learning_rate: ", lr_,
          " (the schedule's value at global step ", global_step, ")"));
    }
  }
  if (kind_ == v1::Optimizer::kAdam) {
    VS_ASSIGN_OR_RETURN(beta1_power_, value(spec_.adam().beta1_power()));
    VS_ASSIGN_OR_RETURN(beta2_power_, value(spec_.adam().beta2_power()));
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, double>> OptimizerStep::Advances() const {
  std::vector<std::pair<std::string, double>> out;
  if (kind_ != v1::Optimizer::kAdam) return out;
  const auto& a = spec_.adam();
  if (!a.beta1_power().has_value()) {
    out.emplace_back(a.beta1_power().variable(), beta1_);
  }
  if (!a.beta2_power().has_value()) {
    out.emplace_back(a.beta2_power().variable(), beta2_);
  }
  return out;
}

// One loop per kind, the kind chosen once per call rather than per element,
// so that each loop is straight-line code the compiler can vectorize (see
// this file's flags in CMakeLists.txt); the arithmetic, and so the result,
// is the same element by element.
void OptimizerStep::ApplyElements(DType dtype, int64_t n, char* var,
                                  const std::vector<char*>& slots,
                                  const char* grad) const {
  VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    // Runs step(i, g, w) on each element: gradient g, value w in and out.
    // Steps that can vectorize capture their inputs by value: stores through
    // the char pointers could alias anything read through a reference, which
    // would keep the loops from vectorizing.
    auto each = [var, grad, n](auto step) {
      for (int64_t i = 0; i < n; ++i) {
        double w = Load<T>(var, i);
        step(i, Load<T>(grad, i), w);
        Store<T>(var, i, w);
      }
    };
    const double lr = lr_;
    switch (kind_) {
      case v1::Optimizer::kGradientDescent:
        each([lr](int64_t, double g, double& w) { w -= lr * g; });
        break;
      case v1::Optimizer::kMomentum:
        each([lr, momentum = momentum_, nesterov = nesterov_, accum = slots[0]](
                 int64_t i, double g, double& w) {
          const double a = Load<T>(accum, i) * momentum + g;
          Store<T>(accum, i, a);
          w -= nesterov ? g * lr + a * momentum * lr : lr * a;
        });
        break;
      case v1::Optimizer::kAdagrad:
        each([lr, accum = slots[0]](int64_t i, double g, double& w) {
          const double a = Load<T>(accum, i) + g * g;
          Store<T>(accum, i, a);
          w -= lr * g / std::sqrt(a);
        });
        break;
      case v1::Optimizer::kAdam: {
        // The step size with bias correction, from the beta powers.
        const double adam_lr =
            lr * std::sqrt(1 - beta2_power_) / (1 - beta1_power_);
        each([adam_lr, beta1 = beta1_, beta2 = beta2_, epsilon = epsilon_,
              m_slot = slots[0],
              v_slot = slots[1]](int64_t i, double g, double& w) {
          const double m = Load<T>(m_slot, i) * beta1 + (1 - beta1) * g;
          const double v = Load<T>(v_slot, i) * beta2 + (1 - beta2) * g * g;
          Store<T>(m_slot, i, m);
          Store<T>(v_slot, i, v);
          w -= adam_lr * m / (std::sqrt(v) + epsilon);
        });
        break;
      }
      case v1::Optimizer::kRmsProp:
        // Slots: rms, then mg when centered, then momentum.
        each([&, mom_slot = slots[centered_ ? 2 : 1]](int64_t i, double g,
                                                      double& w) {
          const double ms =
              Load<T>(slots[0], i) * decay_ + (1 - decay_) * g * g;
          Store<T>(slots[0], i, ms);
          double denom = ms + epsilon_;
          if (centered_) {
            const double mg = Load<T>(slots[1], i) * decay_ + (1 - decay_) * g;
            Store<T>(slots[1], i, mg);
            denom -= mg * mg;
          }
          const double mom =
              Load<T>(mom_slot, i) * momentum_ + lr * g / std::sqrt(denom);
          Store<T>(mom_slot, i, mom);
          w -= mom;
        });
        break;
      case v1::Optimizer::kFtrl:
        each([&](int64_t i, double g, double& w) {
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
        });
        break;
      case v1::Optimizer::KIND_NOT_SET:
        break;
    }
  });
}

namespace {

// Keras' backend.epsilon().
constexpr double kNormEpsilon = 1e-7;

// The axes a norm constraint reduces (empty: every axis); null for
// non_neg.
const google::protobuf::RepeatedField<int32_t>* NormAxes(
    const v1::Constraint& c) {
  switch (c.kind_case()) {
    case v1::Constraint::kMaxNorm:
      return &c.max_norm().axis();
    case v1::Constraint::kUnitNorm:
      return &c.unit_norm().axis();
    case v1::Constraint::kMinMaxNorm:
      return &c.min_max_norm().axis();
    default:
      return nullptr;
  }
}

}  // namespace

absl::Status ValidateConstraint(const v1::Constraint& constraint,
                                absl::string_view name, int rank) {
  auto check = [](bool ok, absl::string_view what, double value) {
    if (ok) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("Invalid constraint ", what, ": ", value));
  };
  auto bound = [&](absl::string_view what, double value) {
    return check(Finite(value) && value >= 0, what, value);
  };
  switch (constraint.kind_case()) {
    case v1::Constraint::kNonNeg:
      return absl::OkStatus();
    case v1::Constraint::kMaxNorm:
      VS_RETURN_IF_ERROR(bound("max_value", constraint.max_norm().max_value()));
      break;
    case v1::Constraint::kUnitNorm:
      break;
    case v1::Constraint::kMinMaxNorm: {
      const auto& m = constraint.min_max_norm();
      VS_RETURN_IF_ERROR(bound("min_value", m.min_value()));
      VS_RETURN_IF_ERROR(bound("max_value", m.max_value()));
      VS_RETURN_IF_ERROR(check(m.min_value() <= m.max_value(),
                               "min_value (above max_value)", m.min_value()));
      VS_RETURN_IF_ERROR(
          check(m.rate() >= 0 && m.rate() <= 1, "rate", m.rate()));
      break;
    }
    case v1::Constraint::KIND_NOT_SET:
      return absl::InvalidArgumentError(
          "A constraint needs one of non_neg, max_norm, unit_norm, "
          "min_max_norm");
  }
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (const int32_t axis : *NormAxes(constraint)) {
    if (axis < -rank || axis >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat("Constraint axis ", axis, " is out of range for ",
                       "variable ", name, " of rank ", rank));
    }
    const size_t a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
    if (seen[a]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Constraint axis ", axis, " is repeated for variable ", name));
    }
    seen[a] = true;
  }
  return absl::OkStatus();
}

void ApplyConstraint(const v1::Constraint& constraint, DType dtype,
                     absl::Span<const int64_t> dims, char* data) {
  int64_t n = 1;
  for (const int64_t d : dims) n *= d;
  VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    const auto* axes = NormAxes(constraint);
    if (axes == nullptr) {  // non_neg: w * (w >= 0), as Keras
      for (int64_t i = 0; i < n; ++i) {
        const double w = Load<T>(data, i);
        Store<T>(data, i, w * (w >= 0 ? 1.0 : 0.0));
      }
      return;
    }
    // Elements that differ only in the reduced axes share a norm (Keras'
    // reduce_sum(..., axis, keepdims=True)).
    const int rank = static_cast<int>(dims.size());
    std::vector<bool> reduced(dims.size(), axes->empty());
    for (const int32_t axis : *axes) {
      reduced[static_cast<size_t>(axis < 0 ? axis + rank : axis)] = true;
    }
    std::vector<int64_t> group_stride(dims.size(), 0);
    int64_t groups = 1;
    for (int a = rank - 1; a >= 0; --a) {
      if (reduced[a]) continue;
      group_stride[a] = groups;
      groups *= dims[a];
    }
    std::vector<int64_t> group_of(static_cast<size_t>(n));
    std::vector<int64_t> index(dims.size(), 0);
    for (int64_t i = 0; i < n; ++i) {
      int64_t g = 0;
      for (int a = 0; a < rank; ++a) g += index[a] * group_stride[a];
      group_of[i] = g;
      for (int a = rank - 1; a >= 0 && ++index[a] == dims[a]; --a) {
        index[a] = 0;
      }
    }
    std::vector<double> norm(static_cast<size_t>(groups), 0);
    for (int64_t i = 0; i < n; ++i) {
      const double w = Load<T>(data, i);
      norm[group_of[i]] += w * w;
    }
    for (double& v : norm) v = std::sqrt(v);
    for (int64_t i = 0; i < n; ++i) {
      const double w = Load<T>(data, i);
      const double r = norm[group_of[i]];
      double out = w / (kNormEpsilon + r);  // unit_norm
      if (constraint.has_max_norm()) {
        const double desired =
            std::clamp(r, 0.0, constraint.max_norm().max_value());
        out = w * (desired / (kNormEpsilon + r));
      } else if (constraint.has_min_max_norm()) {
        const auto& m = constraint.min_max_norm();
        const double desired =
            m.rate() * std::clamp(r, m.min_value(), m.max_value()) +
            (1 - m.rate()) * r;
        out = w * (desired / (kNormEpsilon + r));
      }
      Store<T>(data, i, out);
    }
  });
}

}  // namespace varscope::server
