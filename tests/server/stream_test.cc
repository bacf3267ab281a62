// End-to-end: variables larger than one message move by streams.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

using ::varscope::testing::CreateRequest;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

server::ServerOptions SmallMessages() {
  server::ServerOptions options;
  options.max_message_bytes = 64 << 10;  // 64 KiB: larger variables stream
  return options;
}

ClientOptions StreamingClient() {
  ClientOptions options = ::varscope::testing::TestClientOptions();
  options.stream_threshold_bytes = 32 << 10;
  options.stream_chunk_bytes = 5000;  // not a multiple of anything
  return options;
}

Tensor Ramp(int64_t n, float start) {
  Tensor t(v1::DT_FLOAT, {n});
  for (int64_t i = 0; i < n; ++i) t.mutable_flat<float>()[i] = start + i;
  return t;
}

absl::Status CreateZeros(Client& client, const std::string& name, int64_t n) {
  return client
      .GetVariable(
          CreateRequest(name, v1::DT_FLOAT, {n}, v1::Initializer::ZEROS))
      .status();
}

TEST(Stream, LargeVariablesRoundTripThroughStreams) {
  TestServer server(SmallMessages());
  std::shared_ptr<Client> client = server.NewClient(StreamingClient());
  constexpr int64_t kN = 100000;  // 400 KB
  VS_ASSERT_OK(CreateZeros(*client, "big", kN));
  VS_ASSERT_OK_AND_ASSIGN(UpdateResult assigned,
                          client->Assign("big", Ramp(kN, 0)));
  EXPECT_EQ(assigned.version, 2);
  VS_ASSERT_OK_AND_ASSIGN(UpdateResult added,
                          client->AssignAdd("big", Ramp(kN, 1)));
  EXPECT_EQ(added.version, 3);
  // Too large for a unary Read: the client falls back to ReadStream.
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("big"));
  EXPECT_EQ(read.version, 3);
  ASSERT_EQ(read.value.num_elements(), kN);
  for (int64_t i = 0; i < kN; i += 997) {
    ASSERT_EQ(read.value.flat<float>()[i], 2 * i + 1) << i;
  }
}

TEST(Stream, StreamedUpdatesAreExactlyOnce) {
  TestServer server(SmallMessages());
  std::shared_ptr<Client> client = server.NewClient(StreamingClient());
  VS_ASSERT_OK(CreateZeros(*client, "big", 20000));
  server.ServiceForTest().DropUpdateRepliesForTest(1);
  VS_ASSERT_OK(client->AssignAdd("big", Ramp(20000, 1)).status());
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("big"));
  EXPECT_EQ(read.value.flat<float>()[19999], 20000);
  EXPECT_EQ(read.version, 2);
  // The stream reached the server twice: the lost reply, then the retry.
  VS_ASSERT_OK_AND_ASSIGN(v1::ServerInfo info, client->GetServerInfo());
  EXPECT_EQ(info.updates(), 2);
}

// Sends `chunks` as a WriteStream and returns the call's status.
grpc::Status SendStream(const std::string& address,
                        const std::vector<v1::TensorChunk>& chunks) {
  auto stub = v1::VariableService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::UpdateResponse response;
  auto writer = stub->WriteStream(&context, &response);
  for (const auto& chunk : chunks) {
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

v1::TensorChunk Header(const std::string& name, int64_t n) {
  v1::TensorChunk chunk;
  chunk.mutable_header()->set_name(name);
  chunk.mutable_header()->set_dtype(v1::DT_FLOAT);
  chunk.mutable_header()->mutable_shape()->add_dims(n);
  return chunk;
}

v1::TensorChunk Data(size_t bytes) {
  v1::TensorChunk chunk;
  chunk.set_data(std::string(bytes, '\0'));
  return chunk;
}

TEST(Stream, MalformedWriteStreamsAreRejectedAndChangeNothing) {
  TestServer server(SmallMessages());
  std::shared_ptr<Client> client = server.NewClient();
  VS_ASSERT_OK(CreateZeros(*client, "v", 4));
  struct Case {
    std::vector<v1::TensorChunk> chunks;
    grpc::StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {{Data(16)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "The first message of a WriteStream must carry the header"},
      {{Header("v", 4), Data(8), Header("v", 4)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "Only the first message of a WriteStream carries a header"},
      {{Header("v", 4), Data(20)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "WriteStream of v sent more than the 16 bytes its shape holds"},
      {{Header("v", 4), Data(12)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "WriteStream of v ended after 12 of 16 bytes"},
      {{Header("v", 5), Data(20)},
       grpc::StatusCode::INVALID_ARGUMENT,
       "Cannot assign a tensor of shape (5,) to variable v of shape (4,)"},
      {{Header("v", int64_t{1} << 40)},
       grpc::StatusCode::RESOURCE_EXHAUSTED,
       "A WriteStream of 4398046511104 bytes is over this server's limit of "
       "4294967296 (--max-variable-bytes)"},
      {{}, grpc::StatusCode::INVALID_ARGUMENT, "A WriteStream sent no header"},
  };
  for (const Case& c : cases) {
    grpc::Status status = SendStream(server.address(), c.chunks);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_EQ(status.error_message(), c.message);
  }
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("v"));
  EXPECT_EQ(read.version, 1);
}

// The status of a WriteStream that sent only `header` (not the bytes it
// declares) and waits for the server's answer (a server waiting for the rest
// instead fails the call after a minute).
grpc::Status SendHeaderOnly(const std::string& address,
                            const v1::TensorChunk& header) {
  auto stub = v1::VariableService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(1)));
  v1::UpdateResponse response;
  auto writer = stub->WriteStream(&context, &response);
  EXPECT_TRUE(writer->Write(header));
  return writer->Finish();  // before WritesDone: the server must answer
}

TEST(Stream, WriteStreamThatCannotApplyEndsAtItsHeader) {
  TestServer server(SmallMessages());
  std::shared_ptr<Client> client = server.NewClient();
  VS_ASSERT_OK(CreateZeros(*client, "v", 4));
  constexpr int64_t k200MiB = int64_t{50} << 20;  // floats
  v1::TensorChunk other_dtype = Header("v", 4);
  other_dtype.mutable_header()->set_dtype(v1::DT_INT32);
  v1::TensorChunk other_version = Header("v", 4);
  other_version.mutable_header()->set_expected_version(7);
  v1::TensorChunk add_other_shape = Header("v", k200MiB);
  add_other_shape.mutable_header()->set_add(true);
  struct Case {
    v1::TensorChunk header;
    grpc::StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {Header("missing", k200MiB), grpc::StatusCode::NOT_FOUND,
       "Variable missing does not exist."},
      {Header("v", k200MiB), grpc::StatusCode::INVALID_ARGUMENT,
       "Cannot assign a tensor of shape (52428800,) to variable v of shape "
       "(4,)"},
      {add_other_shape, grpc::StatusCode::INVALID_ARGUMENT,
       "Cannot add a tensor of shape (52428800,) to variable v of shape (4,)"},
      {other_dtype, grpc::StatusCode::INVALID_ARGUMENT,
       "Cannot assign a tensor of dtype int32 to variable v of dtype "
       "float32"},
      {other_version, grpc::StatusCode::ABORTED,
       "Variable v is at version 1, not the expected version 7"},
  };
  for (const Case& c : cases) {
    const grpc::Status status = SendHeaderOnly(server.address(), c.header);
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_EQ(status.error_message(), c.message);
  }
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("v"));
  EXPECT_EQ(read.version, 1);
}

TEST(Stream, ReadStreamOfAMissingVariableIsNotFound) {
  TestServer server(SmallMessages());
  auto stub = v1::VariableService::NewStub(grpc::CreateChannel(
      server.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::ReadRequest request;
  request.set_name("missing");
  auto reader = stub->ReadStream(&context, request);
  v1::TensorChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(Stream, OneGibibyteVariableCanBeCreatedPulledPushedAndRestarted) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  constexpr int64_t kN = int64_t{1} << 28;  // 2^28 floats = 1 GiB
  VS_ASSERT_OK(CreateZeros(*client, "huge", kN));
  {
    Tensor ones(v1::DT_FLOAT, {kN});
    for (float& x : ones.mutable_flat<float>()) x = 1;
    ones.mutable_flat<float>()[kN - 1] = 7;
    VS_ASSERT_OK(client->Assign("huge", std::move(ones)).status());
  }
  VS_ASSERT_OK(server.Restart());
  client = server.NewClient();
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("huge"));
  EXPECT_EQ(read.version, 2);
  ASSERT_EQ(read.value.num_elements(), kN);
  EXPECT_EQ(read.value.flat<float>()[0], 1);
  EXPECT_EQ(read.value.flat<float>()[kN - 1], 7);
}

}  // namespace
}  // namespace varscope
