#include "common/initializers.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/random.h"
#include "common/status_matchers.h"
#include "common/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace varscope {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::varscope::testing::IsOk;
using ::varscope::testing::StatusIs;
using Init = v1::Initializer;

Init Spec(Init::Kind kind) {
  Init spec;
  spec.set_kind(kind);
  return spec;
}

template <typename T>
v1::Tensor ValueProto(DType dtype, std::vector<int64_t> dims,
                      std::vector<T> values) {
  Tensor t(dtype, std::move(dims));
  const absl::Span<T> out = t.mutable_flat<T>();
  for (size_t i = 0; i < values.size(); ++i) out[i] = values[i];
  v1::Tensor proto;
  TensorToProto(std::move(t), &proto);
  return proto;
}

Init Constant(v1::Tensor value) {
  Init spec = Spec(Init::CONSTANT);
  *spec.mutable_value() = std::move(value);
  return spec;
}

absl::StatusOr<Tensor> Whole(const Init& spec, int64_t seed, DType dtype,
                             const std::vector<int64_t>& dims) {
  return InitialValue(spec, seed, dtype, dims,
                      std::vector<int64_t>(dims.size(), 0), dims);
}

// The elements of `t` as T.
template <typename T>
std::vector<T> Elements(const Tensor& t) {
  absl::Span<const T> flat = t.flat<T>();
  return std::vector<T>(flat.begin(), flat.end());
}

std::vector<double> AsDoubles(const Tensor& t) {
  return VisitDType(t.dtype(), [&](auto zero) {
    using T = decltype(zero);
    std::vector<double> out;
    for (const T& v : Elements<T>(t)) out.push_back(ToDouble(v));
    return out;
  });
}

// The part [offset, offset + dims) of `whole`, copied element by element.
Tensor SliceOf(const Tensor& whole, const std::vector<int64_t>& offset,
               const std::vector<int64_t>& dims) {
  Tensor part(whole.dtype(), dims);
  const size_t size = DTypeSize(whole.dtype());
  const std::vector<int64_t>& full = whole.dims();
  const int64_t n = part.num_elements();
  for (int64_t p = 0; p < n; ++p) {
    int64_t rest = p, full_index = 0, stride = 1;
    std::vector<int64_t> index(dims.size());
    for (size_t k = dims.size(); k-- > 0;) {
      index[k] = rest % dims[k];
      rest /= dims[k];
    }
    for (size_t k = dims.size(); k-- > 0;) {
      full_index += (offset[k] + index[k]) * stride;
      stride *= full[k];
    }
    memcpy(part.mutable_data() + p * size,
           whole.bytes().data() + full_index * size, size);
  }
  return part;
}

struct Moments {
  double mean = 0;
  double stddev = 0;
  double min = 0;
  double max = 0;
};

Moments ComputeMoments(const std::vector<double>& values) {
  Moments m;
  m.min = *std::min_element(values.begin(), values.end());
  m.max = *std::max_element(values.begin(), values.end());
  for (double v : values) m.mean += v;
  m.mean /= values.size();
  for (double v : values) m.stddev += (v - m.mean) * (v - m.mean);
  m.stddev = std::sqrt(m.stddev / values.size());
  return m;
}

// ---------------------------------------------------------------------------
// Default resolution.

TEST(ResolveDefaultInitializer, GlorotUniformForFloatsZerosOtherwise) {
  for (DType dtype :
       {v1::DT_FLOAT, v1::DT_DOUBLE, v1::DT_HALF, v1::DT_BFLOAT16}) {
    EXPECT_EQ(ResolveDefaultInitializer(Init(), dtype).kind(),
              Init::GLOROT_UNIFORM)
        << DTypeName(dtype);
  }
  for (DType dtype : {v1::DT_INT8, v1::DT_UINT8, v1::DT_INT16, v1::DT_INT32,
                      v1::DT_INT64, v1::DT_BOOL}) {
    EXPECT_EQ(ResolveDefaultInitializer(Init(), dtype).kind(), Init::ZEROS)
        << DTypeName(dtype);
  }
}

TEST(ResolveDefaultInitializer, KeepsExplicitKindAndFields) {
  Init spec = Spec(Init::RANDOM_NORMAL);
  spec.set_stddev(0.5);
  const Init resolved = ResolveDefaultInitializer(spec, v1::DT_INT32);
  EXPECT_EQ(resolved.kind(), Init::RANDOM_NORMAL);
  EXPECT_EQ(resolved.stddev(), 0.5);
}

TEST(InitialValue, DefaultKindMatchesItsResolution) {
  VS_ASSERT_OK_AND_ASSIGN(Tensor by_default,
                          Whole(Init(), 5, v1::DT_FLOAT, {20, 30}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor glorot, Whole(Spec(Init::GLOROT_UNIFORM), 5,
                                               v1::DT_FLOAT, {20, 30}));
  EXPECT_EQ(by_default.bytes(), glorot.bytes());
  VS_ASSERT_OK_AND_ASSIGN(Tensor ints, Whole(Init(), 5, v1::DT_INT32, {4}));
  EXPECT_THAT(ints.flat<int32_t>(), ElementsAre(0, 0, 0, 0));
}

// ---------------------------------------------------------------------------
// zeros, ones, constant.

TEST(InitialValue, ZerosAndOnesInEveryDType) {
  for (DType dtype : kAllDTypes) {
    SCOPED_TRACE(DTypeName(dtype));
    VS_ASSERT_OK_AND_ASSIGN(Tensor zeros,
                            Whole(Spec(Init::ZEROS), 1, dtype, {2, 3}));
    EXPECT_EQ(zeros.dims(), (std::vector<int64_t>{2, 3}));
    EXPECT_THAT(AsDoubles(zeros), Each(0.0));
    VS_ASSERT_OK_AND_ASSIGN(Tensor ones,
                            Whole(Spec(Init::ONES), 1, dtype, {2, 3}));
    EXPECT_THAT(AsDoubles(ones), Each(1.0));
  }
  VS_ASSERT_OK_AND_ASSIGN(Tensor half,
                          Whole(Spec(Init::ONES), 1, v1::DT_HALF, {1}));
  EXPECT_EQ(half.flat<Half>()[0].bits, 0x3c00);
  VS_ASSERT_OK_AND_ASSIGN(Tensor bf16,
                          Whole(Spec(Init::ONES), 1, v1::DT_BFLOAT16, {1}));
  EXPECT_EQ(bf16.flat<BFloat16>()[0].bits, 0x3f80);
  VS_ASSERT_OK_AND_ASSIGN(Tensor flag,
                          Whole(Spec(Init::ONES), 1, v1::DT_BOOL, {}));
  EXPECT_THAT(Elements<bool>(flag), ElementsAre(true));
}

TEST(InitialValue, ConstantScalarFillsEveryElement) {
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor t, Whole(Constant(ValueProto<float>(v1::DT_FLOAT, {}, {2.5f})), 0,
                      v1::DT_FLOAT, {2, 2}));
  EXPECT_THAT(t.flat<float>(), ElementsAre(2.5f, 2.5f, 2.5f, 2.5f));
}

TEST(InitialValue, ConstantShortListIsPaddedWithItsLastValue) {
  // TensorFlow's example: [0..7] into a [3, 4] variable.
  const Init spec = Constant(
      ValueProto<int32_t>(v1::DT_INT32, {8}, {0, 1, 2, 3, 4, 5, 6, 7}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(spec, 0, v1::DT_INT32, {3, 4}));
  EXPECT_THAT(t.flat<int32_t>(),
              ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 7, 7));
  // The value's own shape does not matter: it is read in row-major order.
  const Init matrix = Constant(
      ValueProto<int32_t>(v1::DT_INT32, {2, 4}, {0, 1, 2, 3, 4, 5, 6, 7}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor same, Whole(matrix, 0, v1::DT_INT32, {3, 4}));
  EXPECT_EQ(same.bytes(), t.bytes());
}

TEST(InitialValue, ConstantWithoutValuesIsZeros) {
  VS_ASSERT_OK_AND_ASSIGN(Tensor unset,
                          Whole(Spec(Init::CONSTANT), 0, v1::DT_FLOAT, {3}));
  EXPECT_THAT(unset.flat<float>(), ElementsAre(0.0f, 0.0f, 0.0f));
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor empty, Whole(Constant(ValueProto<double>(v1::DT_DOUBLE, {0}, {})),
                          0, v1::DT_INT64, {3}));
  EXPECT_THAT(empty.flat<int64_t>(), ElementsAre(0, 0, 0));
}

TEST(InitialValue, ConstantExactlyFullIsCopied) {
  const Init spec =
      Constant(ValueProto<double>(v1::DT_DOUBLE, {3}, {1.25, -2.5, 3.0}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(spec, 0, v1::DT_DOUBLE, {3}));
  EXPECT_THAT(t.flat<double>(), ElementsAre(1.25, -2.5, 3.0));
}

TEST(InitialValue, ConstantWithTooManyValuesIsRejected) {
  const Init spec = Constant(
      ValueProto<float>(v1::DT_FLOAT, {13}, std::vector<float>(13, 1.0f)));
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_FLOAT, {3, 4}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Too many elements provided. Needed at most 12, but "
                       "received 13"));
  EXPECT_THAT(Whole(spec, 0, v1::DT_FLOAT, {3, 4}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Too many elements provided. Needed at most 12, but "
                       "received 13"));
}

TEST(InitialValue, ConstantWithMalformedValueIsRejected) {
  v1::Tensor value = ValueProto<float>(v1::DT_FLOAT, {1}, {1.0f});
  value.mutable_shape()->set_dims(0, 2);
  EXPECT_THAT(
      ValidateInitializer(Constant(value), v1::DT_FLOAT, {3}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Invalid constant initializer value: Tensor of shape (2,) and "
               "dtype float32 needs 8 bytes, but 4 were sent"));
  value.set_dtype(v1::DT_INVALID);
  EXPECT_THAT(
      ValidateInitializer(Constant(value), v1::DT_FLOAT, {3}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Invalid constant initializer value: Unsupported dtype 0"));
}

TEST(InitialValue, ConstantConvertsToTheVariableDType) {
  const Init spec = Constant(
      ValueProto<double>(v1::DT_DOUBLE, {5}, {1.9, -1.9, 0.0, 0.5, 65504.0}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor i32, Whole(spec, 0, v1::DT_INT32, {5}));
  EXPECT_THAT(i32.flat<int32_t>(), ElementsAre(1, -1, 0, 0, 65504));
  VS_ASSERT_OK_AND_ASSIGN(Tensor i64, Whole(spec, 0, v1::DT_INT64, {5}));
  EXPECT_THAT(i64.flat<int64_t>(), ElementsAre(1, -1, 0, 0, 65504));
  VS_ASSERT_OK_AND_ASSIGN(Tensor flags, Whole(spec, 0, v1::DT_BOOL, {5}));
  EXPECT_THAT(Elements<bool>(flags),
              ElementsAre(true, true, false, true, true));
  VS_ASSERT_OK_AND_ASSIGN(Tensor f16, Whole(spec, 0, v1::DT_HALF, {5}));
  std::vector<uint16_t> f16_bits;
  for (Half h : f16.flat<Half>()) f16_bits.push_back(h.bits);
  // 1.9 -> 1.900390625, the nearest half; 65504 is the largest finite half.
  EXPECT_THAT(f16_bits, ElementsAre(0x3f9a, 0xbf9a, 0x0000, 0x3800, 0x7bff));
  VS_ASSERT_OK_AND_ASSIGN(Tensor bf16, Whole(spec, 0, v1::DT_BFLOAT16, {5}));
  std::vector<uint16_t> bf16_bits;
  for (BFloat16 b : bf16.flat<BFloat16>()) bf16_bits.push_back(b.bits);
  EXPECT_THAT(bf16_bits, ElementsAre(0x3ff3, 0xbff3, 0x0000, 0x3f00, 0x4780));
  VS_ASSERT_OK_AND_ASSIGN(Tensor f32, Whole(spec, 0, v1::DT_FLOAT, {5}));
  EXPECT_THAT(f32.flat<float>(),
              ElementsAre(1.9f, -1.9f, 0.0f, 0.5f, 65504.0f));
}

TEST(InitialValue, ConstantFromBoolValues) {
  const Init spec = Constant(ValueProto<bool>(v1::DT_BOOL, {2}, {true, false}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor f, Whole(spec, 0, v1::DT_FLOAT, {3}));
  EXPECT_THAT(f.flat<float>(), ElementsAre(1.0f, 0.0f, 0.0f));
  VS_ASSERT_OK_AND_ASSIGN(Tensor b, Whole(spec, 0, v1::DT_BOOL, {3}));
  EXPECT_THAT(Elements<bool>(b), ElementsAre(true, false, false));
}

TEST(InitialValue, ConstantInt64KeepsEveryBit) {
  const int64_t big = (int64_t{1} << 60) + 1;  // not representable in double
  const Init spec =
      Constant(ValueProto<int64_t>(v1::DT_INT64, {2}, {big, -big}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(spec, 0, v1::DT_INT64, {3}));
  EXPECT_THAT(t.flat<int64_t>(), ElementsAre(big, -big, -big));
  const Init small = Constant(ValueProto<int64_t>(v1::DT_INT64, {1}, {-7}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor i8, Whole(small, 0, v1::DT_INT8, {2}));
  EXPECT_THAT(i8.flat<int8_t>(), ElementsAre(-7, -7));
}

TEST(InitialValue, ConstantOutOfIntegerRangeIsRejected) {
  const Init spec =
      Constant(ValueProto<double>(v1::DT_DOUBLE, {2}, {1.0, 3e10}));
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_INT32, {2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Constant initializer value 3e+10 (element 1) is out "
                       "of range for int32"));
  VS_EXPECT_OK(ValidateInitializer(spec, v1::DT_INT64, {2}));
  const Init nan =
      Constant(ValueProto<float>(v1::DT_FLOAT, {}, {std::nanf("")}));
  EXPECT_THAT(ValidateInitializer(nan, v1::DT_INT64, {2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Constant initializer value nan (element 0) is out of "
                       "range for int64"));
  const Init negative = Constant(ValueProto<int32_t>(v1::DT_INT32, {}, {-1}));
  EXPECT_THAT(ValidateInitializer(negative, v1::DT_UINT8, {2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Constant initializer value -1 (element 0) is out of "
                       "range for uint8"));
  // Floating and bool variables take any value.
  VS_EXPECT_OK(ValidateInitializer(spec, v1::DT_HALF, {2}));
  VS_EXPECT_OK(ValidateInitializer(nan, v1::DT_BOOL, {2}));
}

// ---------------------------------------------------------------------------
// Element-wise random kinds: statistics.

TEST(InitialValue, RandomNormalHasRequestedMeanAndStddev) {
  Init spec = Spec(Init::RANDOM_NORMAL);
  spec.set_mean(2.0);
  spec.set_stddev(3.0);
  VS_ASSERT_OK_AND_ASSIGN(Tensor t,
                          Whole(spec, 11, v1::DT_FLOAT, {1000, 1000}));
  const std::vector<double> v = AsDoubles(t);
  const Moments m = ComputeMoments(v);
  EXPECT_NEAR(m.mean, 2.0, 0.015);  // 5 standard errors
  EXPECT_NEAR(m.stddev, 3.0, 0.011);
  const auto within_one = std::count_if(
      v.begin(), v.end(), [](double x) { return std::fabs(x - 2.0) < 3.0; });
  EXPECT_NEAR(static_cast<double>(within_one) / v.size(), 0.682689, 0.0025);
  EXPECT_LT(m.min, 2.0 - 4 * 3.0);  // untruncated: 4-sigma values occur
  EXPECT_GT(m.max, 2.0 + 4 * 3.0);
}

TEST(InitialValue, RandomNormalDefaultsToStandardNormal) {
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor t, Whole(Spec(Init::RANDOM_NORMAL), 3, v1::DT_DOUBLE, {500000}));
  const Moments m = ComputeMoments(AsDoubles(t));
  EXPECT_NEAR(m.mean, 0.0, 0.007);
  EXPECT_NEAR(m.stddev, 1.0, 0.005);
}

TEST(InitialValue, TruncatedNormalStaysWithinTwoStddev) {
  Init spec = Spec(Init::TRUNCATED_NORMAL);
  spec.set_mean(0.5);
  spec.set_stddev(2.0);
  VS_ASSERT_OK_AND_ASSIGN(Tensor t,
                          Whole(spec, 12, v1::DT_DOUBLE, {1000, 1000}));
  const Moments m = ComputeMoments(AsDoubles(t));
  EXPECT_GT(m.min, 0.5 - 4.0);
  EXPECT_LT(m.max, 0.5 + 4.0);
  EXPECT_LT(m.min, 0.5 - 3.99);  // the bound is reached, not undercut
  EXPECT_GT(m.max, 0.5 + 3.99);
  EXPECT_NEAR(m.mean, 0.5, 0.01);
  EXPECT_NEAR(m.stddev, 2.0 * 0.87962566103423978, 0.01);
}

TEST(InitialValue, RandomUniformFloatCoversHalfOpenRange) {
  Init spec = Spec(Init::RANDOM_UNIFORM);
  spec.set_minval(-3.0);
  spec.set_maxval(5.0);
  VS_ASSERT_OK_AND_ASSIGN(Tensor t,
                          Whole(spec, 13, v1::DT_FLOAT, {1000, 1000}));
  const Moments m = ComputeMoments(AsDoubles(t));
  EXPECT_GE(m.min, -3.0);
  EXPECT_LT(m.max, 5.0);
  EXPECT_LT(m.min, -2.999);
  EXPECT_GT(m.max, 4.999);
  EXPECT_NEAR(m.mean, 1.0, 0.012);
  EXPECT_NEAR(m.stddev, 8.0 / std::sqrt(12.0), 0.006);
}

TEST(InitialValue, RandomUniformDefaultsToUnitIntervalInEveryFloatDType) {
  for (DType dtype :
       {v1::DT_FLOAT, v1::DT_DOUBLE, v1::DT_HALF, v1::DT_BFLOAT16}) {
    SCOPED_TRACE(DTypeName(dtype));
    VS_ASSERT_OK_AND_ASSIGN(
        Tensor t, Whole(Spec(Init::RANDOM_UNIFORM), 14, dtype, {200000}));
    const Moments m = ComputeMoments(AsDoubles(t));
    EXPECT_GE(m.min, 0.0);
    EXPECT_LT(m.max, 1.0);  // never rounds up to maxval, even in 8 bits
    EXPECT_NEAR(m.mean, 0.5, 0.005);
    EXPECT_NEAR(m.stddev, std::sqrt(1.0 / 12.0), 0.005);
  }
}

TEST(InitialValue, RandomUniformIntIsUniformOverHalfOpenRange) {
  Init spec = Spec(Init::RANDOM_UNIFORM);
  spec.set_minval(-5);
  spec.set_maxval(7);
  for (DType dtype : {v1::DT_INT32, v1::DT_INT64}) {
    SCOPED_TRACE(DTypeName(dtype));
    VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(spec, 15, dtype, {120000}));
    std::vector<int> counts(12, 0);
    for (double v : AsDoubles(t)) {
      ASSERT_GE(v, -5);
      ASSERT_LT(v, 7);
      ASSERT_EQ(v, std::trunc(v));
      ++counts[static_cast<int>(v) + 5];
    }
    for (int c : counts) EXPECT_NEAR(c, 10000, 500);  // 5 standard errors
  }
}

TEST(InitialValue, RandomUniformInt64SpansWideRanges) {
  Init spec = Spec(Init::RANDOM_UNIFORM);
  spec.set_minval(-std::ldexp(1.0, 62));
  spec.set_maxval(std::ldexp(1.0, 62));
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(spec, 16, v1::DT_INT64, {10000}));
  const absl::Span<const int64_t> v = t.flat<int64_t>();
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  EXPECT_GE(*lo, -(int64_t{1} << 62));
  EXPECT_LT(*hi, int64_t{1} << 62);
  EXPECT_LT(*lo, -(int64_t{1} << 61));
  EXPECT_GT(*hi, int64_t{1} << 61);
  // Odd values occur: the low bits are random too.
  EXPECT_TRUE(std::any_of(v.begin(), v.end(), [](int64_t x) { return x & 1; }));
}

TEST(InitialValue, RandomUniformIntErrors) {
  Init spec = Spec(Init::RANDOM_UNIFORM);
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_INT32, {3}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Must specify maxval for integer dtype tf.int32"));
  spec.set_minval(5);
  spec.set_maxval(3);
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_INT64, {3}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Need minval < maxval, got 5 >= 3"));
  spec.set_maxval(5);
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_INT64, {3}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Need minval < maxval, got 5 >= 5"));
  spec.set_minval(0.5);
  spec.set_maxval(10);
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_INT32, {3}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "random_uniform of dtype int32 needs integer minval and "
                       "maxval in its range, got minval 0.5 and maxval 10"));
  spec.set_minval(0);
  spec.set_maxval(std::ldexp(1.0, 31));
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_INT32, {3}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "random_uniform of dtype int32 needs integer minval and "
                       "maxval in its range, got minval 0 and maxval "
                       "2.14748e+09"));
  VS_EXPECT_OK(ValidateInitializer(spec, v1::DT_INT64, {3}));
  for (DType dtype : {v1::DT_INT8, v1::DT_UINT8, v1::DT_INT16, v1::DT_BOOL}) {
    EXPECT_THAT(ValidateInitializer(spec, dtype, {3}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("Invalid dtype tf.", DTypeName(dtype))));
  }
}

TEST(InitialValue, NormalKindsRejectNonFloatingDTypes) {
  for (Init::Kind kind :
       {Init::RANDOM_NORMAL, Init::TRUNCATED_NORMAL, Init::GLOROT_UNIFORM,
        Init::GLOROT_NORMAL, Init::VARIANCE_SCALING, Init::ORTHOGONAL,
        Init::IDENTITY}) {
    for (DType dtype : {v1::DT_INT32, v1::DT_INT64, v1::DT_BOOL}) {
      SCOPED_TRACE(absl::StrCat(Init::Kind_Name(kind), " ", DTypeName(dtype)));
      const std::string message =
          absl::StrCat("Expected floating point type, got <dtype: '",
                       DTypeName(dtype), "'>.");
      EXPECT_THAT(ValidateInitializer(Spec(kind), dtype, {4, 4}),
                  StatusIs(absl::StatusCode::kInvalidArgument, message));
      EXPECT_THAT(Whole(Spec(kind), 1, dtype, {4, 4}),
                  StatusIs(absl::StatusCode::kInvalidArgument, message));
    }
  }
}

// ---------------------------------------------------------------------------
// glorot and variance_scaling.

TEST(InitialValue, GlorotUniformLimitComesFromFanAverage) {
  // limit = sqrt(6 / (fan_in + fan_out)).
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(Spec(Init::GLOROT_UNIFORM), 17,
                                          v1::DT_DOUBLE, {300, 500}));
  const double limit = std::sqrt(6.0 / 800.0);
  const Moments m = ComputeMoments(AsDoubles(t));
  EXPECT_GE(m.min, -limit);
  EXPECT_LT(m.max, limit);
  EXPECT_LT(m.min, -0.999 * limit);
  EXPECT_GT(m.max, 0.999 * limit);
  EXPECT_NEAR(m.mean, 0.0, 0.01 * limit);
  EXPECT_NEAR(m.stddev, limit / std::sqrt(3.0), 0.01 * limit);
}

TEST(InitialValue, GlorotUniformCountsReceptiveFieldOfConvKernels) {
  // [3, 3, 64, 128]: fan_in = 3*3*64 = 576, fan_out = 3*3*128 = 1152.
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(Spec(Init::GLOROT_UNIFORM), 18,
                                          v1::DT_FLOAT, {3, 3, 64, 128}));
  const double limit = std::sqrt(6.0 / (576.0 + 1152.0));
  const Moments m = ComputeMoments(AsDoubles(t));
  EXPECT_LE(m.max, limit * (1 + 1e-7));  // float32 rounding
  EXPECT_GE(m.min, -limit * (1 + 1e-7));
  EXPECT_LT(m.min, -0.999 * limit);
  EXPECT_GT(m.max, 0.999 * limit);
}

TEST(InitialValue, GlorotNormalStddevAfterTruncationIsFanBased) {
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(Spec(Init::GLOROT_NORMAL), 19,
                                          v1::DT_DOUBLE, {400, 600}));
  const double target = std::sqrt(2.0 / 1000.0);
  const double bound = 2 * target / 0.87962566103423978;
  const Moments m = ComputeMoments(AsDoubles(t));
  EXPECT_NEAR(m.stddev, target, 0.01 * target);
  EXPECT_NEAR(m.mean, 0.0, 0.01 * target);
  EXPECT_GT(m.min, -bound);
  EXPECT_LT(m.max, bound);
  EXPECT_LT(m.min, -0.999 * bound);
}

struct VarianceScalingCase {
  Init::FanMode mode;
  Init::Distribution distribution;
  double scale;
  std::vector<int64_t> dims;
  double fan;  // the n of TensorFlow's formula
};

TEST(InitialValue, VarianceScalingFollowsModeScaleAndDistribution) {
  const VarianceScalingCase cases[] = {
      {Init::FAN_IN, Init::DIST_UNTRUNCATED_NORMAL, 2.0, {1000, 500}, 1000},
      {Init::FAN_OUT, Init::DIST_UNIFORM, 2.0, {1000, 500}, 500},
      {Init::FAN_AVG, Init::DIST_TRUNCATED_NORMAL, 0.5, {1000, 500}, 750},
      {Init::FAN_IN, Init::DIST_UNIFORM, 1.0, {250000}, 250000},
      {Init::FAN_OUT,
       Init::DIST_TRUNCATED_NORMAL,
       3.0,
       {5, 5, 40, 200},
       5 * 5 * 200},
      {Init::FAN_IN,
       Init::DIST_UNTRUNCATED_NORMAL,
       1.0,
       {2, 10, 50, 250},
       2 * 10 * 50},
  };
  for (const VarianceScalingCase& c : cases) {
    SCOPED_TRACE(absl::StrCat(Init::FanMode_Name(c.mode), " ",
                              Init::Distribution_Name(c.distribution)));
    Init spec = Spec(Init::VARIANCE_SCALING);
    spec.set_scale(c.scale);
    spec.set_mode(c.mode);
    spec.set_distribution(c.distribution);
    VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(spec, 20, v1::DT_DOUBLE, c.dims));
    const Moments m = ComputeMoments(AsDoubles(t));
    const double target = std::sqrt(c.scale / c.fan);
    EXPECT_NEAR(m.stddev, target, 0.01 * target);
    EXPECT_NEAR(m.mean, 0.0, 0.01 * target);
    if (c.distribution == Init::DIST_UNIFORM) {
      EXPECT_GE(m.min, -std::sqrt(3.0) * target);
      EXPECT_LT(m.max, std::sqrt(3.0) * target);
    } else if (c.distribution == Init::DIST_TRUNCATED_NORMAL) {
      EXPECT_LT(std::max(-m.min, m.max), 2 * target / 0.87962566103423978);
    } else {
      EXPECT_GT(std::max(-m.min, m.max), 2 * target / 0.87962566103423978);
    }
  }
}

TEST(InitialValue, VarianceScalingDefaultsAreTensorFlows) {
  // scale 1, fan_in, truncated_normal.
  VS_ASSERT_OK_AND_ASSIGN(Tensor by_default, Whole(Spec(Init::VARIANCE_SCALING),
                                                   21, v1::DT_FLOAT, {64, 32}));
  Init spec = Spec(Init::VARIANCE_SCALING);
  spec.set_scale(1.0);
  spec.set_mode(Init::FAN_IN);
  spec.set_distribution(Init::DIST_TRUNCATED_NORMAL);
  VS_ASSERT_OK_AND_ASSIGN(Tensor explicit_,
                          Whole(spec, 21, v1::DT_FLOAT, {64, 32}));
  EXPECT_EQ(by_default.bytes(), explicit_.bytes());
}

TEST(InitialValue, VarianceScalingFansOfScalarsAndZeroSizes) {
  // Rank 0: fans are 1; a zero fan counts as 1.
  Init spec = Spec(Init::VARIANCE_SCALING);
  spec.set_distribution(Init::DIST_UNIFORM);
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{}, std::vector<int64_t>{0, 5}}) {
    VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(spec, 22, v1::DT_DOUBLE, dims));
    for (double v : AsDoubles(t)) EXPECT_LT(std::fabs(v), std::sqrt(3.0));
  }
}

TEST(InitialValue, VarianceScalingErrors) {
  Init spec = Spec(Init::VARIANCE_SCALING);
  for (double scale : {0.0, -1.0, std::nan("")}) {
    spec.set_scale(scale);
    EXPECT_THAT(ValidateInitializer(spec, v1::DT_FLOAT, {2, 2}),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "`scale` must be positive float."));
  }
  spec.set_scale(1.0);
  spec.set_mode(static_cast<Init::FanMode>(7));
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_FLOAT, {2, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid `mode` argument: 7"));
  spec.set_mode(Init::FAN_OUT);
  spec.set_distribution(static_cast<Init::Distribution>(9));
  EXPECT_THAT(ValidateInitializer(spec, v1::DT_FLOAT, {2, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid `distribution` argument: 9"));
}

// ---------------------------------------------------------------------------
// orthogonal and identity.

// The rows x cols product a^T b of row-major matrices a (n x rows) and
// b (n x cols).
std::vector<double> TransposeTimes(const std::vector<double>& a,
                                   const std::vector<double>& b, int64_t n,
                                   int64_t rows, int64_t cols) {
  std::vector<double> out(rows * cols, 0.0);
  for (int64_t k = 0; k < n; ++k) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        out[i * cols + j] += a[k * rows + i] * b[k * cols + j];
      }
    }
  }
  return out;
}

std::vector<double> Transposed(const std::vector<double>& a, int64_t rows,
                               int64_t cols) {
  std::vector<double> out(a.size());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) out[j * rows + i] = a[i * cols + j];
  }
  return out;
}

void ExpectScaledIdentity(const std::vector<double>& m, int64_t n, double scale,
                          double tolerance) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      ASSERT_NEAR(m[i * n + j], i == j ? scale : 0.0, tolerance)
          << "at (" << i << ", " << j << ")";
    }
  }
}

TEST(InitialValue, OrthogonalTallHasOrthonormalColumns) {
  for (DType dtype : {v1::DT_FLOAT, v1::DT_DOUBLE}) {
    SCOPED_TRACE(DTypeName(dtype));
    VS_ASSERT_OK_AND_ASSIGN(Tensor t,
                            Whole(Spec(Init::ORTHOGONAL), 23, dtype, {64, 32}));
    const std::vector<double> q = AsDoubles(t);
    ExpectScaledIdentity(TransposeTimes(q, q, 64, 32, 32), 32, 1.0,
                         dtype == v1::DT_FLOAT ? 1e-5 : 1e-12);
  }
}

TEST(InitialValue, OrthogonalWideHasOrthonormalRows) {
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor t, Whole(Spec(Init::ORTHOGONAL), 24, v1::DT_FLOAT, {20, 50}));
  const std::vector<double> qt = Transposed(AsDoubles(t), 20, 50);  // 50 x 20
  ExpectScaledIdentity(TransposeTimes(qt, qt, 50, 20, 20), 20, 1.0, 1e-5);
}

TEST(InitialValue, OrthogonalFlattensLeadingAxesAndAppliesGain) {
  // [3, 3, 8, 16] flattens to 72 x 16.
  Init spec = Spec(Init::ORTHOGONAL);
  spec.set_gain(2.0);
  VS_ASSERT_OK_AND_ASSIGN(Tensor t,
                          Whole(spec, 25, v1::DT_FLOAT, {3, 3, 8, 16}));
  const std::vector<double> q = AsDoubles(t);
  ExpectScaledIdentity(TransposeTimes(q, q, 72, 16, 16), 16, 4.0, 4e-5);
}

TEST(InitialValue, OrthogonalIsTheSignCorrectedQOfANormalMatrix) {
  // TensorFlow's construction: a = normal matrix, a = q r, q *= sign(diag r).
  // Then r = q^T a must be upper triangular with a positive diagonal.
  constexpr int64_t kRows = 40, kCols = 12;
  constexpr int64_t kSeed = 26;
  VS_ASSERT_OK_AND_ASSIGN(Tensor t, Whole(Spec(Init::ORTHOGONAL), kSeed,
                                          v1::DT_DOUBLE, {kRows, kCols}));
  const CounterRng rng(kSeed);
  std::vector<double> a(kRows * kCols);
  for (size_t i = 0; i < a.size(); ++i) a[i] = rng.Normal(i);
  const std::vector<double> r =
      TransposeTimes(AsDoubles(t), a, kRows, kCols, kCols);
  for (int64_t i = 0; i < kCols; ++i) {
    EXPECT_GT(r[i * kCols + i], 0.0);
    for (int64_t j = 0; j < i; ++j) EXPECT_NEAR(r[i * kCols + j], 0.0, 1e-12);
  }
}

TEST(InitialValue, OrthogonalSquareInHalfPrecision) {
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor t, Whole(Spec(Init::ORTHOGONAL), 27, v1::DT_BFLOAT16, {16, 16}));
  const std::vector<double> q = AsDoubles(t);
  ExpectScaledIdentity(TransposeTimes(q, q, 16, 16, 16), 16, 1.0, 0.03);
}

TEST(InitialValue, OrthogonalNeedsTwoDimensions) {
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{}, std::vector<int64_t>{5}}) {
    EXPECT_THAT(ValidateInitializer(Spec(Init::ORTHOGONAL), v1::DT_FLOAT, dims),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "The tensor to initialize must be at least "
                         "two-dimensional"));
  }
}

TEST(InitialValue, IdentityIsExactEyeTimesGain) {
  Init spec = Spec(Init::IDENTITY);
  VS_ASSERT_OK_AND_ASSIGN(Tensor wide, Whole(spec, 0, v1::DT_FLOAT, {2, 3}));
  EXPECT_THAT(wide.flat<float>(), ElementsAre(1, 0, 0, 0, 1, 0));
  spec.set_gain(2.5);
  VS_ASSERT_OK_AND_ASSIGN(Tensor tall, Whole(spec, 0, v1::DT_DOUBLE, {3, 2}));
  EXPECT_THAT(tall.flat<double>(), ElementsAre(2.5, 0, 0, 2.5, 0, 0));
  VS_ASSERT_OK_AND_ASSIGN(Tensor half, Whole(spec, 0, v1::DT_HALF, {2, 2}));
  std::vector<uint16_t> bits;
  for (Half h : half.flat<Half>()) bits.push_back(h.bits);
  EXPECT_THAT(bits, ElementsAre(0x4100, 0, 0, 0x4100));
}

TEST(InitialValue, IdentityNeedsExactlyTwoDimensions) {
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{}, std::vector<int64_t>{4},
        std::vector<int64_t>{2, 2, 2}}) {
    EXPECT_THAT(Whole(Spec(Init::IDENTITY), 0, v1::DT_FLOAT, dims),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "Identity matrix initializer can only be used for 2D "
                         "matrices."));
  }
}

// ---------------------------------------------------------------------------
// Determinism, dtype conversion and parts.

std::vector<std::pair<std::string, Init>> AllKinds() {
  Init normal = Spec(Init::RANDOM_NORMAL);
  normal.set_mean(1.0);
  normal.set_stddev(0.5);
  Init uniform = Spec(Init::RANDOM_UNIFORM);
  uniform.set_minval(-2.0);
  uniform.set_maxval(3.0);
  Init scaling = Spec(Init::VARIANCE_SCALING);
  scaling.set_scale(2.0);
  scaling.set_mode(Init::FAN_AVG);
  scaling.set_distribution(Init::DIST_UNTRUNCATED_NORMAL);
  Init identity = Spec(Init::IDENTITY);
  identity.set_gain(3.0);
  return {
      {"zeros", Spec(Init::ZEROS)},
      {"ones", Spec(Init::ONES)},
      {"constant",
       Constant(ValueProto<float>(v1::DT_FLOAT, {5}, {1, 2, 3, 4, 5}))},
      {"random_normal", normal},
      {"truncated_normal", Spec(Init::TRUNCATED_NORMAL)},
      {"random_uniform", uniform},
      {"glorot_uniform", Spec(Init::GLOROT_UNIFORM)},
      {"glorot_normal", Spec(Init::GLOROT_NORMAL)},
      {"variance_scaling", scaling},
      {"orthogonal", Spec(Init::ORTHOGONAL)},
      {"identity", identity},
  };
}

bool IsRandom(const Init& spec) {
  return spec.kind() != Init::ZEROS && spec.kind() != Init::ONES &&
         spec.kind() != Init::CONSTANT && spec.kind() != Init::IDENTITY;
}

TEST(InitialValue, SameSeedSameBytesDifferentSeedDifferentBytes) {
  for (const auto& [name, spec] : AllKinds()) {
    SCOPED_TRACE(name);
    VS_ASSERT_OK_AND_ASSIGN(Tensor a,
                            Whole(spec, 1234, v1::DT_FLOAT, {30, 20}));
    VS_ASSERT_OK_AND_ASSIGN(Tensor b,
                            Whole(spec, 1234, v1::DT_FLOAT, {30, 20}));
    VS_ASSERT_OK_AND_ASSIGN(Tensor c,
                            Whole(spec, 1235, v1::DT_FLOAT, {30, 20}));
    EXPECT_EQ(a.bytes(), b.bytes());
    if (IsRandom(spec)) {
      EXPECT_NE(a.bytes(), c.bytes());
    } else {
      EXPECT_EQ(a.bytes(), c.bytes());
    }
  }
  // A negative seed is a seed like any other.
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor neg, Whole(Spec(Init::RANDOM_NORMAL), -1, v1::DT_FLOAT, {8}));
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor pos, Whole(Spec(Init::RANDOM_NORMAL), 1, v1::DT_FLOAT, {8}));
  EXPECT_NE(neg.bytes(), pos.bytes());
}

TEST(InitialValue, ValuesArePinnedAcrossRunsAndMachines) {
  // Golden values for seed 42: a change to the generator or the samplers
  // would change the initial value of every variable ever made with a seed.
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor normal, Whole(Spec(Init::RANDOM_NORMAL), 42, v1::DT_DOUBLE, {10}));
  EXPECT_EQ(normal.flat<double>()[0], -0x1.a4cf416d42f64p-2);
  EXPECT_EQ(normal.flat<double>()[1], -0x1.f5e3d9afd7a85p+0);
  EXPECT_EQ(normal.flat<double>()[2], 0x1.5b508b87d06a7p-1);
  EXPECT_EQ(normal.flat<double>()[3], 0x1.8615d17e58a38p+0);
  EXPECT_EQ(normal.flat<double>()[9], -0x1.40cede29db33p+1);
  // Truncation keeps draws within 2 and redraws element 9.
  VS_ASSERT_OK_AND_ASSIGN(Tensor truncated, Whole(Spec(Init::TRUNCATED_NORMAL),
                                                  42, v1::DT_DOUBLE, {10}));
  EXPECT_EQ(truncated.flat<double>()[0], -0x1.a4cf416d42f64p-2);
  EXPECT_EQ(truncated.flat<double>()[3], 0x1.8615d17e58a38p+0);
  EXPECT_EQ(truncated.flat<double>()[9], -0x1.644306a036a65p-4);
  VS_ASSERT_OK_AND_ASSIGN(Tensor uniform, Whole(Spec(Init::RANDOM_UNIFORM), 42,
                                                v1::DT_DOUBLE, {4}));
  EXPECT_THAT(uniform.flat<double>(),
              ElementsAre(0x1.dfd524ee73abcp-2, 0x1.4ee9b3f7f36c8p-2,
                          0x1.510ebb97a6d8p-1, 0x1.575e1b57758ep-1));
}

TEST(InitialValue, FloatDTypesRoundTheSameDraws) {
  // Normal draws do not depend on the dtype: each narrower dtype holds the
  // float64 value rounded by FromDouble.
  for (Init::Kind kind : {Init::RANDOM_NORMAL, Init::TRUNCATED_NORMAL,
                          Init::GLOROT_NORMAL, Init::ORTHOGONAL}) {
    SCOPED_TRACE(Init::Kind_Name(kind));
    VS_ASSERT_OK_AND_ASSIGN(Tensor wide,
                            Whole(Spec(kind), 9, v1::DT_DOUBLE, {40, 25}));
    VS_ASSERT_OK_AND_ASSIGN(Tensor f32,
                            Whole(Spec(kind), 9, v1::DT_FLOAT, {40, 25}));
    VS_ASSERT_OK_AND_ASSIGN(Tensor f16,
                            Whole(Spec(kind), 9, v1::DT_HALF, {40, 25}));
    VS_ASSERT_OK_AND_ASSIGN(Tensor bf16,
                            Whole(Spec(kind), 9, v1::DT_BFLOAT16, {40, 25}));
    const absl::Span<const double> d = wide.flat<double>();
    for (size_t i = 0; i < d.size(); ++i) {
      ASSERT_EQ(f32.flat<float>()[i], static_cast<float>(d[i]));
      ASSERT_EQ(f16.flat<Half>()[i].bits, FromDouble<Half>(d[i]).bits);
      ASSERT_EQ(bf16.flat<BFloat16>()[i].bits, FromDouble<BFloat16>(d[i]).bits);
    }
  }
}

TEST(InitialValue, PartsEqualSlicesOfTheWhole) {
  const std::vector<int64_t> full = {7, 5, 3};
  // Parts along each axis, including uneven and empty ones.
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>
      parts = {{{0, 0, 0}, {3, 5, 3}}, {{3, 0, 0}, {2, 5, 3}},
               {{5, 0, 0}, {2, 5, 3}}, {{0, 2, 0}, {7, 2, 3}},
               {{0, 0, 1}, {7, 5, 2}}, {{2, 1, 1}, {4, 3, 1}},
               {{7, 0, 0}, {0, 5, 3}}};
  for (const auto& [name, spec] : AllKinds()) {
    if (spec.kind() == Init::IDENTITY) continue;  // 2-D only; below
    for (DType dtype : {v1::DT_FLOAT, v1::DT_HALF}) {
      SCOPED_TRACE(absl::StrCat(name, " ", DTypeName(dtype)));
      VS_ASSERT_OK_AND_ASSIGN(Tensor whole, Whole(spec, 77, dtype, full));
      for (const auto& [offset, dims] : parts) {
        VS_ASSERT_OK_AND_ASSIGN(
            Tensor part, InitialValue(spec, 77, dtype, full, offset, dims));
        EXPECT_EQ(part.dims(), dims);
        EXPECT_EQ(part.bytes(), SliceOf(whole, offset, dims).bytes());
      }
    }
  }
  Init uniform_int = Spec(Init::RANDOM_UNIFORM);
  uniform_int.set_maxval(1000);
  VS_ASSERT_OK_AND_ASSIGN(Tensor ints,
                          Whole(uniform_int, 78, v1::DT_INT64, full));
  for (const auto& [offset, dims] : parts) {
    VS_ASSERT_OK_AND_ASSIGN(
        Tensor part,
        InitialValue(uniform_int, 78, v1::DT_INT64, full, offset, dims));
    EXPECT_EQ(part.bytes(), SliceOf(ints, offset, dims).bytes());
  }
  Init identity = Spec(Init::IDENTITY);
  VS_ASSERT_OK_AND_ASSIGN(Tensor eye, Whole(identity, 0, v1::DT_FLOAT, {6, 4}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor rows, InitialValue(identity, 0, v1::DT_FLOAT,
                                                    {6, 4}, {2, 0}, {2, 4}));
  EXPECT_THAT(rows.flat<float>(), ElementsAre(0, 0, 1, 0, 0, 0, 0, 1));
  EXPECT_EQ(rows.bytes(), SliceOf(eye, {2, 0}, {2, 4}).bytes());
}

TEST(InitialValue, ScalarVariable) {
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor t, Whole(Spec(Init::RANDOM_NORMAL), 5, v1::DT_FLOAT, {}));
  EXPECT_TRUE(t.dims().empty());
  EXPECT_EQ(t.num_elements(), 1);
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor one, Whole(Spec(Init::RANDOM_NORMAL), 5, v1::DT_FLOAT, {1}));
  EXPECT_EQ(t.bytes(), one.bytes());  // element 0 either way
}

// ---------------------------------------------------------------------------
// Argument errors.

TEST(InitialValue, RejectsUnsupportedDTypeAndBadShapes) {
  EXPECT_THAT(
      ValidateInitializer(Spec(Init::ZEROS), v1::DT_INVALID, {2}),
      StatusIs(absl::StatusCode::kInvalidArgument, "Unsupported dtype 0"));
  EXPECT_THAT(
      Whole(Spec(Init::ZEROS), 0, static_cast<DType>(77), {2}),
      StatusIs(absl::StatusCode::kInvalidArgument, "Unsupported dtype 77"));
  EXPECT_THAT(ValidateInitializer(Spec(Init::ZEROS), v1::DT_FLOAT, {2, -1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid shape (2, None): dimension 1 is -1; dimensions "
                       "must be >= 0"));
  EXPECT_THAT(ValidateInitializer(Spec(Init::ZEROS), v1::DT_FLOAT,
                                  {int64_t{1} << 30, int64_t{1} << 30}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Shape (1073741824, 1073741824) has more than 2^50 "
                       "elements"));
}

TEST(InitialValue, RejectsUnknownKind) {
  EXPECT_THAT(
      ValidateInitializer(Spec(static_cast<Init::Kind>(99)), v1::DT_FLOAT, {2}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Unknown initializer kind 99"));
}

TEST(InitialValue, RejectsPartsOutsideTheVariable) {
  const Init spec = Spec(Init::ONES);
  EXPECT_THAT(InitialValue(spec, 0, v1::DT_FLOAT, {10, 5}, {8, 0}, {4, 5}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A part of shape (4, 5) at offset (8, 0) does not fit "
                       "in a variable of shape (10, 5)"));
  EXPECT_THAT(InitialValue(spec, 0, v1::DT_FLOAT, {10, 5}, {0}, {10}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A part of shape (10,) at offset (0,) does not fit in a "
                       "variable of shape (10, 5)"));
  EXPECT_THAT(InitialValue(spec, 0, v1::DT_FLOAT, {10, 5}, {-1, 0}, {1, 5}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(InitialValue(spec, 0, v1::DT_FLOAT, {10, 5}, {0, 0}, {-1, 5}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ValidateInitializer, AcceptsEveryKindOnFloatMatrices) {
  for (const auto& [name, spec] : AllKinds()) {
    for (DType dtype :
         {v1::DT_FLOAT, v1::DT_DOUBLE, v1::DT_HALF, v1::DT_BFLOAT16}) {
      EXPECT_THAT(ValidateInitializer(spec, dtype, {4, 3}), IsOk())
          << name << " " << DTypeName(dtype);
    }
  }
}

}  // namespace
}  // namespace varscope
