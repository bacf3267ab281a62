#include "server/raw_calls.h"

#include <grpcpp/support/slice.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace varscope::server {
namespace {

using ::testing::ElementsAre;
using ::varscope::testing::StatusIs;

// The bytes of `buffer`, joined.
std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

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
  v1::ReadResponse parsed;
  {
    const grpc::ByteBuffer buffer = ReadResponseRaw(value);
    EXPECT_EQ(value.bytes.use_count(), 2);  // the reply holds a reference
    EXPECT_TRUE(HasSliceAt(buffer, value.bytes->data()));
    ASSERT_TRUE(parsed.ParseFromString(Flatten(buffer)));
  }
  EXPECT_EQ(value.bytes.use_count(), 1);  // released with the reply
  EXPECT_EQ(parsed.version(), 42);
  EXPECT_EQ(parsed.value().dtype(), v1::DT_FLOAT);
  EXPECT_THAT(parsed.value().shape().dims(), ElementsAre(1 << 17, 2));
  EXPECT_EQ(parsed.value().content(), *value.bytes);
}

TEST(ReadResponseRaw, CopiesASmallContent) {
  const VariableTable::SharedValue value = Value(64, 3);
  const grpc::ByteBuffer buffer = ReadResponseRaw(value);
  EXPECT_EQ(value.bytes.use_count(), 1);
  v1::ReadResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(buffer)));
  EXPECT_EQ(parsed.version(), 3);
  EXPECT_THAT(parsed.value().shape().dims(), ElementsAre(8, 2));
  EXPECT_EQ(parsed.value().content(), *value.bytes);
}

TEST(BatchReadResponseRaw, ParsesAsTheResponseWithEveryEntryInOrder) {
  const std::vector<std::pair<std::string, VariableTable::SharedValue>> values =
      {{"a/large", Value(300 << 10, 7)},
       {"a/small", Value(16, 1)},
       {"b/empty", Value(0, 2)},
       {"c/large", Value(20 << 10, 9)}};
  const grpc::ByteBuffer buffer = BatchReadResponseRaw(values);
  v1::BatchReadResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(buffer)));
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

}  // namespace
}  // namespace varscope::server
