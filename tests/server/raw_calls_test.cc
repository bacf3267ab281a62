#include "server/service/raw_calls.h"

#include <grpcpp/support/slice.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_call.h"

namespace varscope::server {
namespace {

using ::testing::ElementsAre;
using ::varscope::testing::Join;
using ::varscope::testing::StatusIs;

// Whether one of `buffer`'s slices starts at `data`.
bool HasSliceAt(const grpc::ByteBuffer& buffer, const char* data) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  for (const grpc::Slice& s : slices) {
    if (reinterpret_cast<const char*>(s.begin()) == data) return true;
  }
  return false;
}

VariableTable::SharedValue Value(size_t bytes, int64_t version) {
  std::string content(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) content[i] = static_cast<char>(i * 7);
  return VariableTable::SharedValue{
      std::make_shared<const std::string>(std::move(content)),
      version,
      v1::DT_FLOAT,
      {static_cast<int64_t>(bytes / 8), 2}};
}

TEST(ReadResponseRaw, ParsesAsTheResponseWithALargeContentShared) {
  const VariableTable::SharedValue value = Value(1 << 20, 42);
  ReplyBudget budget(int64_t{1} << 30);
  v1::ReadResponse parsed;
  {
    VS_ASSERT_OK_AND_ASSIGN(const grpc::ByteBuffer buffer,
                            ReadResponseRaw(value, budget));
    EXPECT_EQ(value.bytes.use_count(), 2);  // the reply holds a reference
    EXPECT_EQ(budget.held_bytes(), 1 << 20);
    EXPECT_TRUE(HasSliceAt(buffer, value.bytes->data()));
    ASSERT_TRUE(parsed.ParseFromString(Join(buffer)));
  }
  EXPECT_EQ(value.bytes.use_count(), 1);  // released with the reply
  EXPECT_EQ(budget.held_bytes(), 0);
  EXPECT_EQ(parsed.version(), 42);
  EXPECT_EQ(parsed.value().dtype(), v1::DT_FLOAT);
  EXPECT_THAT(parsed.value().shape().dims(), ElementsAre(1 << 17, 2));
  EXPECT_EQ(parsed.value().content(), *value.bytes);
}

TEST(ReadResponseRaw, CopiesASmallContent) {
  const VariableTable::SharedValue value = Value(64, 3);
  ReplyBudget budget(1);
  VS_ASSERT_OK_AND_ASSIGN(const grpc::ByteBuffer buffer,
                          ReadResponseRaw(value, budget));
  EXPECT_EQ(value.bytes.use_count(), 1);
  EXPECT_EQ(budget.held_bytes(), 0);
  v1::ReadResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Join(buffer)));
  EXPECT_EQ(parsed.version(), 3);
  EXPECT_THAT(parsed.value().shape().dims(), ElementsAre(8, 2));
  EXPECT_EQ(parsed.value().content(), *value.bytes);
}

TEST(UpdateResponseRaw, SharesTheValueAndIsNeverRefused) {
  const VariableTable::SharedValue value = Value(1 << 20, 7);
  // Replies already hold more than the limit: a read's would be refused.
  ReplyBudget budget(1);
  const VariableTable::SharedValue held = Value(1 << 20, 1);
  VS_ASSERT_OK_AND_ASSIGN(const grpc::ByteBuffer first,
                          ReadResponseRaw(held, budget));
  EXPECT_THAT(ReadResponseRaw(value, budget),
              StatusIs(absl::StatusCode::kResourceExhausted));
  VS_ASSERT_OK_AND_ASSIGN(const grpc::ByteBuffer buffer,
                          UpdateResponseRaw(value, budget));
  EXPECT_EQ(budget.held_bytes(), 2 << 20);
  EXPECT_TRUE(HasSliceAt(buffer, value.bytes->data()));
  v1::UpdateResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Join(buffer)));
  EXPECT_EQ(parsed.version(), 7);
  EXPECT_THAT(parsed.value().shape().dims(), ElementsAre(1 << 17, 2));
  EXPECT_EQ(parsed.value().content(), *value.bytes);
}

TEST(BatchReadResponseRaw, ParsesAsTheResponseWithEveryEntryInOrder) {
  const std::vector<std::pair<std::string, VariableTable::SharedValue>> values =
      {{"a/large", Value(300 << 10, 7)},
       {"a/small", Value(16, 1)},
       {"b/empty", Value(0, 2)},
       {"c/large", Value(20 << 10, 9)}};
  ReplyBudget budget(int64_t{1} << 30);
  VS_ASSERT_OK_AND_ASSIGN(const grpc::ByteBuffer buffer,
                          BatchReadResponseRaw(values, budget));
  EXPECT_EQ(budget.held_bytes(), (300 << 10) + (20 << 10));
  v1::BatchReadResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Join(buffer)));
  ASSERT_EQ(parsed.entries_size(), 4);
  for (int i = 0; i < 4; ++i) {
    const auto& [name, value] = values[i];
    const v1::BatchReadResponse::Entry& entry = parsed.entries(i);
    EXPECT_EQ(entry.name(), name);
    EXPECT_EQ(entry.version(), value.version);
    EXPECT_EQ(entry.value().dtype(), v1::DT_FLOAT);
    EXPECT_THAT(entry.value().shape().dims(),
                ElementsAre(value.dims[0], value.dims[1]));
    EXPECT_EQ(entry.value().content(), *value.bytes);
  }
  EXPECT_TRUE(HasSliceAt(buffer, values[0].second.bytes->data()));
  EXPECT_TRUE(HasSliceAt(buffer, values[3].second.bytes->data()));
}

TEST(ParseRaw, ReadsASerializedMessage) {
  v1::AssignRequest request;
  request.set_name("w");
  request.mutable_value()->set_content(std::string(100000, 'x'));
  request.mutable_id()->set_sequence(5);
  v1::AssignRequest parsed;
  VS_ASSERT_OK(ParseRaw(SerializeRaw(request), &parsed));
  EXPECT_EQ(parsed.SerializeAsString(), request.SerializeAsString());
}

TEST(ParseRaw, RejectsBytesThatDoNotParse) {
  const std::string garbage = "\xff\xff\xff";
  grpc::Slice slice(garbage.data(), garbage.size());
  v1::ReadRequest parsed;
  EXPECT_THAT(
      ParseRaw(grpc::ByteBuffer(&slice, 1), &parsed),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "The request does not parse as varscope.v1.ReadRequest"));
}

TEST(ParseRaw, NamesAnEnumValueOutsideItsEnum) {
  v1::BatchUpdateRequest request;
  request.add_updates()->mutable_assign()->set_dtype(v1::DT_FLOAT);
  request.add_updates()->mutable_scatter()->set_mode(
      static_cast<v1::Scatter::Mode>(-1));
  v1::BatchUpdateRequest parsed;
  EXPECT_THAT(
      ParseRaw(SerializeRaw(request), &parsed),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Unknown scatter mode -1 in field updates[1].scatter.mode"));
  v1::GetVariableRequest get;
  get.set_dtype(static_cast<v1::DataType>(7));  // TensorFlow's DT_STRING
  v1::GetVariableRequest parsed_get;
  EXPECT_THAT(ParseRaw(SerializeRaw(get), &parsed_get),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown data type 7 in field dtype"));
}

TEST(ParseRaw, NamesTheLowestNumberedBadEnumAndAcceptsDefinedOnes) {
  v1::GetVariableRequest get;
  get.set_name("a");
  get.mutable_shape()->add_dims(2);
  get.set_mode(v1::REUSE);
  get.set_dtype(v1::DT_FLOAT);
  get.mutable_initializer()->set_kind(v1::Initializer::RANDOM_NORMAL);
  v1::GetVariableRequest parsed;
  VS_EXPECT_OK(ParseRaw(SerializeRaw(get), &parsed));
  EXPECT_EQ(parsed.dtype(), v1::DT_FLOAT);
  get.mutable_initializer()->set_kind(static_cast<v1::Initializer::Kind>(99));
  get.set_dtype(static_cast<v1::DataType>(7));
  EXPECT_THAT(ParseRaw(SerializeRaw(get), &parsed),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown data type 7 in field dtype"));
  get.set_dtype(v1::DT_FLOAT);
  EXPECT_THAT(
      ParseRaw(SerializeRaw(get), &parsed),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Unknown initializer kind 99 in field initializer.kind"));
}

std::shared_ptr<const std::string> Bytes(size_t n) {
  return std::make_shared<const std::string>(n, 'x');
}

TEST(ReplyBudget, CountsABufferOnceWhateverHoldsIt) {
  ReplyBudget budget(100);
  const auto a = Bytes(60);
  VS_ASSERT_OK_AND_ASSIGN(auto first, budget.Reserve({a, a}, true));
  VS_ASSERT_OK_AND_ASSIGN(auto second, budget.Reserve({a}, true));
  EXPECT_EQ(budget.held_bytes(), 60);
  first.reset();
  EXPECT_EQ(budget.held_bytes(), 60);
  second.reset();
  EXPECT_EQ(budget.held_bytes(), 0);
}

TEST(ReplyBudget, RefusesWhatWouldPassTheLimitUntilHoldsGo) {
  ReplyBudget budget(100);
  const auto a = Bytes(60), b = Bytes(40), c = Bytes(1);
  // One reply alone may pass the limit.
  VS_ASSERT_OK_AND_ASSIGN(auto big, budget.Reserve({Bytes(500)}, true));
  big.reset();
  VS_ASSERT_OK_AND_ASSIGN(auto held_a, budget.Reserve({a}, true));
  VS_ASSERT_OK_AND_ASSIGN(auto held_b, budget.Reserve({b}, true));
  EXPECT_THAT(budget.Reserve({c}, true),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "Replies not yet received by their clients hold 100 "
                       "bytes; this one would add 1, over this server's limit "
                       "of 100 (--max-pending-reply-bytes). Try again once "
                       "slow readers catch up"));
  // Buffers already held add nothing; a change's reply is never refused.
  VS_EXPECT_OK(budget.Reserve({a, b}, true).status());
  VS_ASSERT_OK_AND_ASSIGN(auto change, budget.Reserve({c}, false));
  EXPECT_EQ(budget.held_bytes(), 101);
  change.reset();
  held_a.reset();
  VS_EXPECT_OK(budget.Reserve({c}, true).status());
}

}  // namespace
}  // namespace varscope::server
