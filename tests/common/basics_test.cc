// Names, shapes, dtypes and tensors.
#include <cmath>
#include <limits>

#include "common/dtype.h"
#include "common/names.h"
#include "common/shape.h"
#include "common/status_matchers.h"
#include "common/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace varscope {
namespace {

using ::varscope::testing::StatusIs;

TEST(Names, ValidNamesPass) {
  for (const char* name : {"a", "A9", ".hidden", "a/b_c-d.e/f", "0/1"}) {
    VS_EXPECT_OK(ValidateName(name)) << name;
  }
}

TEST(Names, JoinAndLeafAndScopes) {
  EXPECT_EQ(JoinName("", "w"), "w");
  EXPECT_EQ(JoinName("a/b", "w"), "a/b/w");
  EXPECT_EQ(LeafName("a/b/w"), "w");
  EXPECT_EQ(LeafName("w"), "w");
  EXPECT_TRUE(IsUnderScope("a/b", "a"));
  EXPECT_FALSE(IsUnderScope("ab", "a"));
  EXPECT_FALSE(IsUnderScope("a", "a"));
  EXPECT_TRUE(IsUnderScope("a", ""));
}

TEST(Names, EditDistanceIsLevenshtein) {
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("same", "same"), 0u);
}

TEST(Shape, PrintsAsTensorFlow) {
  EXPECT_EQ(Shape::Unknown().ToString(), "<unknown>");
  EXPECT_EQ(Shape().ToString(), "()");
  EXPECT_EQ(Shape({10}).ToString(), "(10,)");
  EXPECT_EQ(Shape({10, 2}).ToString(), "(10, 2)");
  EXPECT_EQ(Shape({-1, 3}).ToString(), "(None, 3)");
}

TEST(Shape, CompatibilityFollowsTensorFlow) {
  EXPECT_TRUE(Shape::Unknown().IsCompatibleWith(Shape({3, 4})));
  EXPECT_TRUE(Shape({-1, 4}).IsCompatibleWith(Shape({3, 4})));
  EXPECT_FALSE(Shape({3}).IsCompatibleWith(Shape({3, 1})));
  EXPECT_FALSE(Shape({3, 5}).IsCompatibleWith(Shape({3, 4})));
  EXPECT_TRUE(Shape().IsCompatibleWith(Shape()));
  EXPECT_FALSE(Shape({-1}).IsFullyDefined());
  EXPECT_FALSE(Shape::Unknown().IsFullyDefined());
}

TEST(Shape, NumElementsChecksOverflow) {
  EXPECT_THAT(NumElements({}), 1);
  EXPECT_THAT(NumElements({0, int64_t{1} << 60}), 0);
  EXPECT_THAT(NumElements({int64_t{1} << 30, int64_t{1} << 30}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DType, NamesAndSizesMatchTensorFlow) {
  EXPECT_EQ(DTypeName(v1::DT_FLOAT), "float32");
  EXPECT_EQ(DTypeName(v1::DT_DOUBLE), "float64");
  EXPECT_EQ(DTypeName(v1::DT_HALF), "float16");
  EXPECT_EQ(DTypeName(v1::DT_BFLOAT16), "bfloat16");
  EXPECT_EQ(DTypeSize(v1::DT_INT64), 8u);
  EXPECT_EQ(DTypeSize(v1::DT_BOOL), 1u);
  EXPECT_THAT(ParseDType("half"), v1::DT_HALF);
  EXPECT_THAT(ParseDType("complex64"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("Unknown dtype 'complex64'")));
}

TEST(DType, HalfConversionsRoundToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // rounds to inf
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalf(2049.0f), FloatToHalf(2048.0f));   // tie to even
  EXPECT_EQ(FloatToHalf(2051.0f), FloatToHalf(2052.0f));
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(NAN))));
  for (uint32_t bits = 0; bits < 0x7c00; ++bits) {  // every finite half
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(bits))), bits);
  }
}

TEST(DType, BFloat16ConversionsRoundToNearestEven) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(FloatToBFloat16(1.00390625f), 0x3f80);  // tie to even
  EXPECT_EQ(FloatToBFloat16(1.01171875f), 0x3f82);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(NAN))));
}

TEST(Tensor, FromBytesChecksTheLength) {
  EXPECT_THAT(Tensor::FromBytes(v1::DT_FLOAT, {2}, std::string(7, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Tensor of shape (2,) and dtype float32 needs 8 bytes, "
                       "but 7 were sent"));
  EXPECT_THAT(
      Tensor::FromBytes(static_cast<DType>(99), {1}, ""),
      StatusIs(absl::StatusCode::kInvalidArgument, "Unsupported dtype 99"));
  VS_ASSERT_OK_AND_ASSIGN(
      Tensor t, Tensor::FromBytes(v1::DT_BOOL, {2}, std::string("\1\0", 2)));
  EXPECT_THAT(t.flat<bool>(), ::testing::ElementsAre(true, false));
}

TEST(Tensor, ProtoRoundTripMovesTheBytes) {
  Tensor t(v1::DT_INT32, {2, 3});
  t.mutable_flat<int32_t>()[5] = 7;
  v1::Tensor proto;
  TensorToProto(t, &proto);
  VS_ASSERT_OK_AND_ASSIGN(Tensor back, TensorFromProto(&proto));
  EXPECT_EQ(back.dims(), t.dims());
  EXPECT_EQ(back.bytes(), t.bytes());
}

}  // namespace
}  // namespace varscope
