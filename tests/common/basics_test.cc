// Names, shapes, dtypes and tensors.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/dtype.h"
#include "common/names.h"
#include "common/shape.h"
#include "common/status_matchers.h"
#include "common/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "varscope/v1/variable_service.pb.h"

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

TEST(Names, BoundedEditDistanceIsExactWithinItsBound) {
  EXPECT_EQ(EditDistance("kitten", "sitting", 3), 3u);
  EXPECT_GT(EditDistance("kitten", "sitting", 2), 2u);
  EXPECT_GT(EditDistance("a", "abcd", 2), 2u);
  EXPECT_EQ(EditDistance("model/dense/kernel", "model/dense/kernal", 1), 1u);
  EXPECT_EQ(EditDistance("", "", 0), 0u);
}

TEST(NameIndex, CandidatesAreEveryNameWhileTheIndexIsSmall) {
  NameIndex index;
  std::vector<std::string> names;
  for (int i = 0; i < static_cast<int>(NameIndex::kWindow); ++i) {
    names.push_back(absl::StrCat("scope_", i % 7, "/w_", i));
    index.Add(names.back());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(index.NearMatchCandidates("scope_3/w_12x"), names);
  EXPECT_EQ(index.NearMatchCandidates("w_12"), names);
}

TEST(NameIndex, CountsRepeatsAndForgetsRemovedNames) {
  NameIndex index;
  index.Add("a/emb");
  index.Add("a/emb");  // the whole of two parts
  index.Add("b/w");
  index.Remove("a/emb");
  EXPECT_EQ(NearMatches("c/emb", index.NearMatchCandidates("c/emb")),
            " Variables named 'emb' exist at: a/emb");
  index.Remove("a/emb");
  index.Remove("never/added");
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(NearMatches("c/emb", index.NearMatchCandidates("c/emb")), "");
}

// Among many names the search is bounded, and still finds a typo at either
// end of a leaf and the first names with the same leaf.
TEST(NameIndex, BoundedSearchFindsTyposAmongManyNames) {
  NameIndex index;
  for (int i = 0; i < 20000; ++i) {
    index.Add(absl::StrCat("features/feature_", i));
    index.Add(absl::StrCat("layer_", i, "/kernel"));
  }
  const size_t bound = 11 + 4 * NameIndex::kWindow;
  const std::pair<const char*, const char*> typos[] = {
      {"features/feature_1234x", "features/feature_1234"},
      {"features/geature_1234", "features/feature_1234"},
      {"layer_77/kernal", "layer_77/kernel"},
      {"layer_77/xernel", "layer_77/kernel"}};
  for (const auto& [miss, meant] : typos) {
    const std::vector<std::string> candidates = index.NearMatchCandidates(miss);
    EXPECT_LE(candidates.size(), bound) << miss;
    const std::string text = NearMatches(miss, candidates);
    absl::string_view help = text;
    ASSERT_TRUE(absl::ConsumePrefix(&help, " Similar names: ")) << help;
    EXPECT_THAT(absl::StrSplit(help, ", "), ::testing::Contains(meant)) << miss;
  }
  EXPECT_EQ(
      NearMatches("other/kernel", index.NearMatchCandidates("other/kernel")),
      " Variables named 'kernel' exist at: layer_0/kernel, "
      "layer_1/kernel, layer_10/kernel, layer_100/kernel, "
      "layer_1000/kernel, layer_10000/kernel, layer_10001/kernel, "
      "layer_10002/kernel, layer_10003/kernel, layer_10004/kernel");
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

TEST(Tensor, BoolElementsAreZeroOrOne) {
  EXPECT_THAT(
      Tensor::FromBytes(v1::DT_BOOL, {2, 2}, std::string("\1\0\0\7", 4)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "bool tensor element 3 is 0x07, not 0 or 1"));
  v1::Tensor proto;
  proto.set_dtype(v1::DT_BOOL);
  proto.mutable_shape()->add_dims(2);
  proto.set_content(std::string("\xff\1", 2));
  EXPECT_THAT(TensorFromProto(&proto),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "bool tensor element 0 is 0xff, not 0 or 1"));
  // Other one-byte dtypes take any byte.
  VS_EXPECT_OK(Tensor::FromBytes(v1::DT_UINT8, {1}, "\7").status());
}

TEST(SharedTensor, MakeChecksAsFromBytes) {
  EXPECT_THAT(SharedTensor::Make(v1::DT_FLOAT, {2}, "1234567", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Tensor of shape (2,) and dtype float32 needs 8 bytes, "
                       "but 7 were sent"));
  EXPECT_THAT(SharedTensor::Make(v1::DT_BOOL, {2}, "\1\2", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "bool tensor element 1 is 0x02, not 0 or 1"));
}

TEST(SharedTensor, OfKeepsTheTensorsBytesAlive) {
  Tensor t(v1::DT_FLOAT, {1024});  // beyond std::string's inline bytes
  const char* data = t.bytes().data();
  const SharedTensor shared = SharedTensor::Of(std::move(t));
  EXPECT_EQ(shared.bytes.data(), data);  // not copied
  EXPECT_EQ(shared.dims, std::vector<int64_t>{1024});
  EXPECT_EQ(shared.bytes.size(), 4096u);
}

TEST(TensorHead, FollowedByTheContentParsesAsTheTensor) {
  const std::string content = "abcdefgh";
  v1::Tensor parsed;
  ASSERT_TRUE(parsed.ParseFromString(
      TensorHead(v1::DT_INT32, {2, 1}, content.size()) + content));
  EXPECT_EQ(parsed.dtype(), v1::DT_INT32);
  EXPECT_THAT(parsed.shape().dims(), ::testing::ElementsAre(2, 1));
  EXPECT_EQ(parsed.content(), content);
  // A message's field holding it, after the message's other fields, parses
  // as the whole message.
  v1::AssignRequest request;
  request.set_name("w");
  const std::string head = TensorHead(v1::DT_INT32, {2, 1}, content.size());
  v1::AssignRequest whole;
  ASSERT_TRUE(
      whole.ParseFromString(request.SerializeAsString() +
                            FieldHead(v1::AssignRequest::kValueFieldNumber,
                                      head.size() + content.size()) +
                            head + content));
  EXPECT_EQ(whole.name(), "w");
  EXPECT_EQ(whole.value().content(), content);
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
