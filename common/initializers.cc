#include "common/initializers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "common/shape.h"
#include "common/status.h"

namespace varscope {
namespace {

// The standard deviation of a standard normal truncated to (-2, 2):
// TensorFlow's correction for variance_scaling's truncated_normal.
constexpr double kTruncatedNormalStddev = 0.87962566103423978;
// Truncated normals are redrawn until within this many stddevs of the mean.
constexpr double kTruncationBound = 2.0;

// How the elements of an initial value are produced.
enum class Sampler {
  kConstant,         // `constant`'s values, the last one repeated
  kNormal,           // mean `a`, stddev `b`
  kTruncatedNormal,  // mean `a`, stddev `b` before truncation at 2 stddev
  kUniform,          // in [a, b), unit draws of `unit_precision` bits
  kUniformInt,       // in [int_min, int_min + int_range)
  kIdentity,         // `a` on the diagonal
  kOrthogonal,       // `a` times an orthogonal matrix
};

// A validated initializer spec reduced to a sampler and its parameters.
struct Plan {
  Sampler sampler = Sampler::kConstant;
  double a = 0;
  double b = 0;
  int unit_precision = 53;
  int64_t int_min = 0;
  uint64_t int_range = 0;
  // Row-major values; empty means all zeros.
  Tensor constant;
};

v1::Initializer::Kind ResolvedKind(v1::Initializer::Kind kind, DType dtype) {
  if (kind != v1::Initializer::KIND_DEFAULT) return kind;
  return IsFloating(dtype) ? v1::Initializer::GLOROT_UNIFORM
                           : v1::Initializer::ZEROS;
}

// TensorFlow's str(dtype), e.g. "<dtype: 'int32'>".
std::string DTypeStr(DType dtype) {
  return absl::StrCat("<dtype: '", DTypeName(dtype), "'>");
}

// TensorFlow's repr(dtype), e.g. "tf.int32".
std::string DTypeRepr(DType dtype) {
  return absl::StrCat("tf.", DTypeName(dtype));
}

absl::Status RequireFloating(DType dtype) {
  if (IsFloating(dtype)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("Expected floating point type, got ", DTypeStr(dtype), "."));
}

// True if `value` truncates to an integer that T can hold.
template <typename T>
bool FitsAfterTruncation(double value) {
  const double t = std::trunc(value);
  return t >= static_cast<double>(std::numeric_limits<T>::min()) &&
         t < static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
}

// True if `value` converts to `dtype` without overflow: integer dtypes need
// the value truncated toward zero (numpy's astype) in range; floating dtypes
// and bool take any value.
bool ConvertsTo(double value, DType dtype) {
  return VisitDType(dtype, [value](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      return FitsAfterTruncation<T>(value);
    } else {
      return true;
    }
  });
}

// Checks that every element of `values` converts to `dtype` (see ConvertsTo).
absl::Status CheckConstantRange(const Tensor& values, DType dtype) {
  return VisitDType(values.dtype(), [&](auto source) -> absl::Status {
    using S = decltype(source);
    const absl::Span<const S> flat = values.flat<S>();
    for (size_t i = 0; i < flat.size(); ++i) {
      const double v = ToDouble(flat[i]);
      if (!ConvertsTo(v, dtype)) {
        return absl::InvalidArgumentError(
            absl::StrCat("Constant initializer value ", v, " (element ", i,
                         ") is out of range for ", DTypeName(dtype)));
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<Plan> ConstantPlan(const v1::Initializer& spec, DType dtype,
                                  int64_t num_elements) {
  Plan plan;
  if (!spec.has_value()) return plan;  // TensorFlow's default value is 0.
  v1::Tensor proto = spec.value();
  absl::StatusOr<Tensor> values = TensorFromProto(&proto);
  if (!values.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Invalid constant initializer value: ", values.status().message()));
  }
  if (values->num_elements() > num_elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("Too many elements provided. Needed at most ",
                     num_elements, ", but received ", values->num_elements()));
  }
  if (values->dtype() != dtype) {
    VS_RETURN_IF_ERROR(CheckConstantRange(*values, dtype));
  }
  plan.constant = *std::move(values);
  return plan;
}

absl::StatusOr<Plan> UniformPlan(const v1::Initializer& spec, DType dtype) {
  Plan plan;
  const double minval = spec.has_minval() ? spec.minval() : 0.0;
  switch (dtype) {
    case v1::DT_DOUBLE:
      plan.unit_precision = std::numeric_limits<double>::digits;
      break;
    case v1::DT_FLOAT:
      plan.unit_precision = std::numeric_limits<float>::digits;
      break;
    case v1::DT_HALF:
      plan.unit_precision = 11;
      break;
    case v1::DT_BFLOAT16:
      plan.unit_precision = 8;
      break;
    case v1::DT_INT32:
    case v1::DT_INT64: {
      if (!spec.has_maxval()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Must specify maxval for integer dtype ", DTypeRepr(dtype)));
      }
      const double maxval = spec.maxval();
      const bool fits = dtype == v1::DT_INT32
                            ? FitsAfterTruncation<int32_t>(minval) &&
                                  FitsAfterTruncation<int32_t>(maxval)
                            : FitsAfterTruncation<int64_t>(minval) &&
                                  FitsAfterTruncation<int64_t>(maxval);
      if (!fits || std::trunc(minval) != minval ||
          std::trunc(maxval) != maxval) {
        return absl::InvalidArgumentError(absl::StrCat(
            "random_uniform of dtype ", DTypeName(dtype),
            " needs integer minval and maxval in its range, got minval ",
            minval, " and maxval ", maxval));
      }
      const auto lo = static_cast<int64_t>(minval);
      const auto hi = static_cast<int64_t>(maxval);
      if (lo >= hi) {
        return absl::InvalidArgumentError(
            absl::StrCat("Need minval < maxval, got ", lo, " >= ", hi));
      }
      plan.sampler = Sampler::kUniformInt;
      plan.int_min = lo;
      plan.int_range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
      return plan;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("Invalid dtype ", DTypeRepr(dtype)));
  }
  plan.sampler = Sampler::kUniform;
  plan.a = minval;
  plan.b = spec.has_maxval() ? spec.maxval() : 1.0;
  return plan;
}

// TensorFlow's _compute_fans: (fan_in, fan_out) of a weight of shape `dims`,
// counting the receptive field of convolution kernels (rank > 2).
std::pair<double, double> ComputeFans(absl::Span<const int64_t> dims) {
  switch (dims.size()) {
    case 0:
      return {1.0, 1.0};
    case 1:
      return {static_cast<double>(dims[0]), static_cast<double>(dims[0])};
    case 2:
      return {static_cast<double>(dims[0]), static_cast<double>(dims[1])};
    default: {
      int64_t receptive_field = 1;
      for (size_t i = 0; i + 2 < dims.size(); ++i) receptive_field *= dims[i];
      return {static_cast<double>(dims[dims.size() - 2] * receptive_field),
              static_cast<double>(dims.back() * receptive_field)};
    }
  }
}

absl::StatusOr<Plan> VarianceScalingPlan(
    double scale, v1::Initializer::FanMode mode,
    v1::Initializer::Distribution distribution,
    absl::Span<const int64_t> full_dims) {
  const auto [fan_in, fan_out] = ComputeFans(full_dims);
  double n;
  switch (mode) {
    case v1::Initializer::FAN_IN:
      n = std::max(1.0, fan_in);
      break;
    case v1::Initializer::FAN_OUT:
      n = std::max(1.0, fan_out);
      break;
    case v1::Initializer::FAN_AVG:
      n = std::max(1.0, (fan_in + fan_out) / 2.0);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("Invalid `mode` argument: ", static_cast<int>(mode)));
  }
  const double s = scale / n;
  Plan plan;
  switch (distribution) {
    case v1::Initializer::DIST_TRUNCATED_NORMAL:
      plan.sampler = Sampler::kTruncatedNormal;
      plan.b = std::sqrt(s) / kTruncatedNormalStddev;
      return plan;
    case v1::Initializer::DIST_UNTRUNCATED_NORMAL:
      plan.sampler = Sampler::kNormal;
      plan.b = std::sqrt(s);
      return plan;
    case v1::Initializer::DIST_UNIFORM: {
      const double limit = std::sqrt(3.0 * s);
      plan.sampler = Sampler::kUniform;
      plan.a = -limit;
      plan.b = limit;
      return plan;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "Invalid `distribution` argument: ", static_cast<int>(distribution)));
  }
}

absl::StatusOr<Plan> MakePlan(const v1::Initializer& spec, DType dtype,
                              absl::Span<const int64_t> full_dims) {
  if (!IsSupportedDType(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unsupported dtype ", static_cast<int>(dtype)));
  }
  VS_RETURN_IF_ERROR(ValidateDims(full_dims, /*allow_unknown=*/false));
  VS_ASSIGN_OR_RETURN(const int64_t num_elements, NumElements(full_dims));
  Plan plan;
  switch (ResolvedKind(spec.kind(), dtype)) {
    case v1::Initializer::ZEROS:
      return plan;
    case v1::Initializer::ONES:
      plan.constant = Tensor(v1::DT_DOUBLE, {});
      plan.constant.mutable_flat<double>()[0] = 1.0;
      return plan;
    case v1::Initializer::CONSTANT:
      return ConstantPlan(spec, dtype, num_elements);
    case v1::Initializer::RANDOM_NORMAL:
    case v1::Initializer::TRUNCATED_NORMAL:
      VS_RETURN_IF_ERROR(RequireFloating(dtype));
      plan.sampler = spec.kind() == v1::Initializer::RANDOM_NORMAL
                         ? Sampler::kNormal
                         : Sampler::kTruncatedNormal;
      plan.a = spec.has_mean() ? spec.mean() : 0.0;
      plan.b = spec.has_stddev() ? spec.stddev() : 1.0;
      return plan;
    case v1::Initializer::RANDOM_UNIFORM:
      return UniformPlan(spec, dtype);
    case v1::Initializer::GLOROT_UNIFORM:
      VS_RETURN_IF_ERROR(RequireFloating(dtype));
      return VarianceScalingPlan(1.0, v1::Initializer::FAN_AVG,
                                 v1::Initializer::DIST_UNIFORM, full_dims);
    case v1::Initializer::GLOROT_NORMAL:
      VS_RETURN_IF_ERROR(RequireFloating(dtype));
      return VarianceScalingPlan(1.0, v1::Initializer::FAN_AVG,
                                 v1::Initializer::DIST_TRUNCATED_NORMAL,
                                 full_dims);
    case v1::Initializer::VARIANCE_SCALING: {
      const double scale = spec.has_scale() ? spec.scale() : 1.0;
      if (!(scale > 0)) {
        return absl::InvalidArgumentError("`scale` must be positive float.");
      }
      VS_ASSIGN_OR_RETURN(
          plan, VarianceScalingPlan(scale, spec.mode(), spec.distribution(),
                                    full_dims));
      VS_RETURN_IF_ERROR(RequireFloating(dtype));
      return plan;
    }
    case v1::Initializer::ORTHOGONAL:
      VS_RETURN_IF_ERROR(RequireFloating(dtype));
      if (full_dims.size() < 2) {
        return absl::InvalidArgumentError(
            "The tensor to initialize must be at least two-dimensional");
      }
      plan.sampler = Sampler::kOrthogonal;
      plan.a = spec.has_gain() ? spec.gain() : 1.0;
      return plan;
    case v1::Initializer::IDENTITY:
      VS_RETURN_IF_ERROR(RequireFloating(dtype));
      if (full_dims.size() != 2) {
        return absl::InvalidArgumentError(
            "Identity matrix initializer can only be used for 2D matrices.");
      }
      plan.sampler = Sampler::kIdentity;
      plan.a = spec.has_gain() ? spec.gain() : 1.0;
      return plan;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "Unknown initializer kind ", static_cast<int>(spec.kind())));
  }
}

// `dims` at `offset` must lie inside `full_dims`.
absl::Status CheckPart(absl::Span<const int64_t> full_dims,
                       absl::Span<const int64_t> offset,
                       absl::Span<const int64_t> dims) {
  bool fits =
      offset.size() == full_dims.size() && dims.size() == full_dims.size();
  for (size_t i = 0; fits && i < full_dims.size(); ++i) {
    fits =
        offset[i] >= 0 && dims[i] >= 0 && offset[i] <= full_dims[i] - dims[i];
  }
  if (fits) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "A part of shape ", ShapeString(dims), " at offset ", ShapeString(offset),
      " does not fit in a variable of shape ", ShapeString(full_dims)));
}

// Calls fn(i) with the row-major index i in the full tensor of each element of
// the part [offset, offset + dims), in the part's row-major order.
template <typename Fn>
void ForEachFullIndex(absl::Span<const int64_t> full_dims,
                      absl::Span<const int64_t> offset,
                      absl::Span<const int64_t> dims, Fn fn) {
  const size_t rank = full_dims.size();
  if (rank == 0) {
    fn(uint64_t{0});
    return;
  }
  if (std::find(dims.begin(), dims.end(), 0) != dims.end()) return;
  std::vector<int64_t> strides(rank, 1);
  for (size_t k = rank - 1; k > 0; --k) {
    strides[k - 1] = strides[k] * full_dims[k];
  }
  // Position in the part along every axis but the last.
  std::vector<int64_t> position(rank - 1, 0);
  for (;;) {
    int64_t row = offset[rank - 1];
    for (size_t k = 0; k + 1 < rank; ++k) {
      row += (offset[k] + position[k]) * strides[k];
    }
    for (int64_t j = 0; j < dims[rank - 1]; ++j) {
      fn(static_cast<uint64_t>(row + j));
    }
    size_t k = rank - 1;
    for (; k > 0; --k) {
      if (++position[k - 1] < dims[k - 1]) break;
      position[k - 1] = 0;
    }
    if (k == 0) return;
  }
}

// The Q factor of the reduced QR decomposition of the rows x cols row-major
// matrix `a`, each column j multiplied by sign(R[j][j]) (0 when R[j][j] is 0),
// so that it does not depend on the algorithm. Householder reflections.
// REQUIRES: rows >= cols.
std::vector<double> SignCorrectedQ(std::vector<double> a, int64_t rows,
                                   int64_t cols) {
  // reflectors[k] is the unit vector v of H_k = I - 2 v v^T acting on rows
  // k.., or empty when H_k = I.
  std::vector<std::vector<double>> reflectors(cols);
  std::vector<double> r_diag(cols);
  std::vector<double> dots(cols);
  for (int64_t k = 0; k < cols; ++k) {
    double norm2 = 0;
    for (int64_t i = k; i < rows; ++i) {
      norm2 += a[i * cols + k] * a[i * cols + k];
    }
    const double norm = std::sqrt(norm2);
    const double x0 = a[k * cols + k];
    const double alpha = x0 >= 0 ? -norm : norm;
    r_diag[k] = alpha;
    std::vector<double> v(rows - k);
    for (int64_t i = k; i < rows; ++i) v[i - k] = a[i * cols + k];
    v[0] -= alpha;
    double v_norm2 = 0;
    for (double x : v) v_norm2 += x * x;
    if (v_norm2 == 0) continue;
    const double v_norm = std::sqrt(v_norm2);
    for (double& x : v) x /= v_norm;
    std::fill(dots.begin() + k, dots.end(), 0.0);
    for (int64_t i = k; i < rows; ++i) {
      for (int64_t j = k; j < cols; ++j) dots[j] += v[i - k] * a[i * cols + j];
    }
    for (int64_t i = k; i < rows; ++i) {
      for (int64_t j = k; j < cols; ++j) {
        a[i * cols + j] -= 2 * v[i - k] * dots[j];
      }
    }
    reflectors[k] = std::move(v);
  }
  // Q = H_0 H_1 ... H_{cols-1} applied to the first cols columns of I, from
  // the right: when H_k applies, columns j < k are still e_j and vanish on
  // rows k.., so only columns k.. change.
  std::vector<double> q(rows * cols, 0.0);
  for (int64_t j = 0; j < cols; ++j) q[j * cols + j] = 1.0;
  for (int64_t k = cols - 1; k >= 0; --k) {
    const std::vector<double>& v = reflectors[k];
    if (v.empty()) continue;
    std::fill(dots.begin() + k, dots.end(), 0.0);
    for (int64_t i = k; i < rows; ++i) {
      for (int64_t j = k; j < cols; ++j) dots[j] += v[i - k] * q[i * cols + j];
    }
    for (int64_t i = k; i < rows; ++i) {
      for (int64_t j = k; j < cols; ++j) {
        q[i * cols + j] -= 2 * v[i - k] * dots[j];
      }
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    const double sign = r_diag[j] > 0 ? 1.0 : (r_diag[j] < 0 ? -1.0 : 0.0);
    for (int64_t i = 0; i < rows; ++i) q[i * cols + j] *= sign;
  }
  return q;
}

// TensorFlow's orthogonal initializer, unscaled, as a row-major matrix of
// prod(full_dims[:-1]) rows and full_dims[-1] columns: the sign-corrected Q
// of a standard normal matrix, built tall and transposed when the shape is
// wide.
std::vector<double> OrthogonalMatrix(const CounterRng& rng,
                                     absl::Span<const int64_t> full_dims) {
  const int64_t cols = full_dims.back();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < full_dims.size(); ++i) rows *= full_dims[i];
  const bool wide = rows < cols;
  const int64_t tall_rows = wide ? cols : rows;
  const int64_t tall_cols = wide ? rows : cols;
  std::vector<double> a(tall_rows * tall_cols);
  for (size_t i = 0; i < a.size(); ++i) a[i] = rng.Normal(i);
  std::vector<double> q = SignCorrectedQ(std::move(a), tall_rows, tall_cols);
  if (!wide) return q;
  std::vector<double> transposed(q.size());
  for (int64_t i = 0; i < tall_rows; ++i) {
    for (int64_t j = 0; j < tall_cols; ++j) {
      transposed[j * tall_rows + i] = q[i * tall_cols + j];
    }
  }
  return transposed;
}

template <typename T>
T FromInt64(int64_t value) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(value);
  } else {
    return FromDouble<T>(static_cast<double>(value));
  }
}

// An element of `values` converted to T: integers directly, everything else
// through double, as numpy's astype.
template <typename T, typename S>
T Convert(S value) {
  if constexpr (std::is_same_v<T, S>) {
    return value;
  } else if constexpr (std::is_integral_v<T> && std::is_integral_v<S>) {
    return static_cast<T>(value);
  } else {
    return FromDouble<T>(ToDouble(value));
  }
}

template <typename T>
std::vector<T> ConvertAll(const Tensor& values) {
  return VisitDType(values.dtype(), [&](auto source) {
    using S = decltype(source);
    std::vector<T> out;
    out.reserve(values.num_elements());
    for (const S& s : values.flat<S>()) out.push_back(Convert<T>(s));
    return out;
  });
}

template <typename T>
void FillPart(const Plan& plan, const CounterRng& rng,
              absl::Span<const int64_t> full_dims,
              absl::Span<const int64_t> offset, absl::Span<const int64_t> dims,
              absl::Span<T> out) {
  size_t pos = 0;
  auto fill = [&](auto value_at) {
    ForEachFullIndex(full_dims, offset, dims,
                     [&](uint64_t i) { out[pos++] = value_at(i); });
  };
  switch (plan.sampler) {
    case Sampler::kConstant: {
      const std::vector<T> values = ConvertAll<T>(plan.constant);
      if (values.empty()) return;  // `out` starts zeroed.
      fill([&](uint64_t i) {
        return values[std::min<uint64_t>(i, values.size() - 1)];
      });
      return;
    }
    case Sampler::kNormal:
      fill([&](uint64_t i) {
        return FromDouble<T>(rng.Normal(i) * plan.b + plan.a);
      });
      return;
    case Sampler::kTruncatedNormal:
      fill([&](uint64_t i) {
        return FromDouble<T>(rng.TruncatedNormal(i, kTruncationBound) * plan.b +
                             plan.a);
      });
      return;
    case Sampler::kUniform:
      fill([&](uint64_t i) {
        const double u =
            CounterRng::ToUnit(rng.Bits(i, 0)[0], plan.unit_precision);
        return FromDouble<T>(u * (plan.b - plan.a) + plan.a);
      });
      return;
    case Sampler::kUniformInt:
      fill([&](uint64_t i) {
        // Lemire's multiply-shift maps 64 random bits onto the range.
        const uint64_t step = absl::Uint128High64(
            absl::uint128(rng.Bits(i, 0)[0]) * plan.int_range);
        return FromInt64<T>(
            static_cast<int64_t>(static_cast<uint64_t>(plan.int_min) + step));
      });
      return;
    case Sampler::kIdentity: {
      const auto cols = static_cast<uint64_t>(full_dims[1]);
      const T diagonal = FromDouble<T>(plan.a);
      const T zero = FromDouble<T>(0.0);
      fill([&](uint64_t i) { return i / cols == i % cols ? diagonal : zero; });
      return;
    }
    case Sampler::kOrthogonal: {
      const std::vector<double> q = OrthogonalMatrix(rng, full_dims);
      fill([&](uint64_t i) { return FromDouble<T>(plan.a * q[i]); });
      return;
    }
  }
}

}  // namespace

v1::Initializer ResolveDefaultInitializer(const v1::Initializer& spec,
                                          DType dtype) {
  v1::Initializer resolved = spec;
  resolved.set_kind(ResolvedKind(spec.kind(), dtype));
  return resolved;
}

absl::Status ValidateInitializer(const v1::Initializer& spec, DType dtype,
                                 absl::Span<const int64_t> full_dims) {
  return MakePlan(spec, dtype, full_dims).status();
}

absl::StatusOr<Tensor> InitialValue(const v1::Initializer& spec, int64_t seed,
                                    DType dtype,
                                    absl::Span<const int64_t> full_dims,
                                    absl::Span<const int64_t> offset,
                                    absl::Span<const int64_t> dims) {
  VS_ASSIGN_OR_RETURN(const Plan plan, MakePlan(spec, dtype, full_dims));
  VS_RETURN_IF_ERROR(CheckPart(full_dims, offset, dims));
  Tensor part(dtype, std::vector<int64_t>(dims.begin(), dims.end()));
  const CounterRng rng(static_cast<uint64_t>(seed));
  VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    FillPart<T>(plan, rng, full_dims, offset, dims, part.mutable_flat<T>());
  });
  return part;
}

}  // namespace varscope
