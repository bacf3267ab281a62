// Client retries and limits against real servers.
#include "client/client.h"

#include <signal.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "tests/testing/closing_listener.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

using ::testing::MatchesRegex;
using ::varscope::testing::ClosingListener;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::PollUntil;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;
using ::varscope::testing::TestShardFlags;

TEST(ClientRetry, IdempotentCallsRetryUntilTheServerComesUp) {
  TempDir dir;
  ClosingListener nothing;
  const std::string address = nothing.address();
  ClientOptions options;
  options.retry_timeout = absl::Minutes(2);  // however slow the start
  std::shared_ptr<Client> client = Client::Connect(address, options);

  // Nothing listens yet: an update that is not numbered for exactly-once
  // application cannot be retried safely, so it fails at once.
  ClientOptions unnumbered;
  unnumbered.exactly_once = false;
  EXPECT_THAT(
      Client::Connect(address, unnumbered)
          ->AssignAdd("x", Tensor(v1::DT_FLOAT, {1})),
      StatusIs(absl::StatusCode::kUnavailable,
               MatchesRegex(absl::StrCat("AssignAdd of x: varscoped at ",
                                         address, " unavailable: .+"))));

  std::unique_ptr<server::Server> server;
  std::thread starter([&] {
    // Once the Read has failed at least once, serve the port.
    const int before = nothing.connections();
    ASSERT_TRUE(PollUntil([&] { return nothing.connections() > before; },
                          absl::Minutes(2)))
        << "the Read never reached " << address;
    nothing.Close();
    server::ServerOptions server_options;
    server_options.listen_address = address;
    server_options.data_dir = dir.path();
    auto started = server::Server::Start(server_options);
    ASSERT_TRUE(started.ok()) << started.status();
    server = *std::move(started);
  });
  // Read retries through UNAVAILABLE and reaches the server's answer.
  EXPECT_THAT(client->Read("x"), StatusIs(absl::StatusCode::kNotFound,
                                          "Variable x does not exist."));
  starter.join();
}

TEST(ClientRetry, GivesUpAfterMaxAttempts) {
  ClientOptions options;
  options.max_attempts = 3;
  options.initial_backoff = absl::Milliseconds(1);
  ClosingListener nothing;
  const std::string address = nothing.address();
  std::shared_ptr<Client> client = Client::Connect(address, options);
  EXPECT_THAT(
      client->Read("x"),
      StatusIs(absl::StatusCode::kUnavailable,
               MatchesRegex(absl::StrCat("Read of x: varscoped at ", address,
                                         " unavailable after 3 attempts in "
                                         "[0-9.]+m?s: .+"))));
}

TEST(ClientRetry, RetriesForRetryTimeoutThenNamesTheServer) {
  ClientOptions options;
  options.retry_timeout = absl::Seconds(1);
  ClosingListener nothing;
  const std::string address = nothing.address();
  std::shared_ptr<Client> client = Client::Connect(address, options);
  const absl::Time start = absl::Now();
  const absl::Status status = client->Read("x").status();
  const absl::Duration took = absl::Now() - start;
  // The last pause would have ended past the budget: at most max_backoff
  // (250 ms) short of it.
  EXPECT_GE(took, absl::Milliseconds(750));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable,
                               MatchesRegex(absl::StrCat(
                                   "Read of x: varscoped at ", address,
                                   " unavailable after [0-9]+ attempts in "
                                   "[0-9.]+m?s: .+"))));
}

// The reply of a CREATE that created its variable is lost: the retry finds
// the variable and cannot tell who created it.
TEST(ClientRetry, RetriedCreateThatFindsItsVariableSaysItMayHaveCreatedIt) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  server.ServiceForTest().DropUpdateRepliesForTest(1);
  const v1::GetVariableRequest request = CreateRequest("w", v1::DT_FLOAT, {2});
  EXPECT_THAT(
      client->GetVariable(request),
      StatusIs(absl::StatusCode::kAlreadyExists,
               absl::StrCat("Variable w already exists, disallowed. Did you "
                            "mean to set reuse=True or reuse=tf.AUTO_REUSE in "
                            "VarScope? (This CREATE was retried after "
                            "varscoped at ",
                            server.address(),
                            " became unavailable: its earlier attempt may have "
                            "created the variable.)")));
  // Without a retry, a CREATE of an existing name is TensorFlow's error.
  EXPECT_THAT(client->GetVariable(request),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "Variable w already exists, disallowed. Did you mean to "
                       "set reuse=True or reuse=tf.AUTO_REUSE in VarScope?"));
}

// A stopped (SIGSTOP) server accepts connections and answers nothing.
class HungServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      auto shard = ServerProcess::Start(dirs_[i].path(), TestShardFlags(i, 2));
      ASSERT_TRUE(shard.ok()) << shard.status();
      shards_[i] = *std::move(shard);
    }
  }
  void TearDown() override {
    for (auto& shard : shards_) {
      if (shard != nullptr) shard->process().Kill(SIGCONT);
    }
  }
  // A name on shard `i` of 2.
  static std::string NameOn(int i) {
    for (int k = 0;; ++k) {
      std::string name = absl::StrCat("v", k);
      if (ShardOf(name, 2) == i) return name;
    }
  }

  TempDir dirs_[2];
  std::unique_ptr<ServerProcess> shards_[2];
};

TEST_F(HungServerTest, CallFailsAfterTheTimeoutNamingTheServerAndTheCall) {
  ClientOptions options;
  options.timeout = absl::Seconds(1);  // short, for this test only
  std::shared_ptr<Client> client =
      Client::Connect(shards_[0]->address(), options);
  EXPECT_THAT(client->Read("x").status(),
              StatusIs(absl::StatusCode::kNotFound));
  shards_[0]->process().Stop();
  EXPECT_THAT(client->Read("x").status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       absl::StrCat("Read of x: no answer from varscoped at ",
                                    shards_[0]->address(),
                                    " within 1s (the timeout of each "
                                    "attempt): the server is hung or "
                                    "overloaded")));
}

TEST_F(HungServerTest, BatchSpanningShardsNamesTheHungShard) {
  ClientOptions options;
  options.timeout = absl::Seconds(1);
  std::shared_ptr<Client> client = Client::Connect(
      absl::StrCat(shards_[0]->address(), ",", shards_[1]->address()), options);
  const std::string on0 = NameOn(0), on1 = NameOn(1);
  for (const std::string& name : {on0, on1}) {
    VS_ASSERT_OK(client->GetVariable(CreateRequest(name, v1::DT_INT64, {})));
  }
  const int64_t one = 1;
  v1::BatchUpdateRequest batch;
  for (const std::string& name : {on0, on1}) {
    *batch.add_updates() = testing::WholeUpdate(
        name, Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&one, 1}),
        /*add=*/true);
  }
  shards_[1]->process().Stop();
  EXPECT_THAT(
      client->BatchUpdate(batch),
      StatusIs(absl::StatusCode::kDeadlineExceeded,
               absl::StrCat("BatchUpdate of 1 update of ", on1,
                            ": no answer from shard 1 of 2 at ",
                            shards_[1]->address(),
                            " within 1s (the timeout of each attempt): the "
                            "server is hung or overloaded")));
  // The live shard applied its part (see Client's contract).
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read(on0));
  EXPECT_EQ(read.value.flat<int64_t>()[0], 1);
}

TEST(ClientLimits, MessageOverTheServerLimitIsResourceExhausted) {
  server::ServerOptions options;
  options.max_message_bytes = 1000;
  TestServer server(options);
  Tensor huge(v1::DT_FLOAT, {1 << 20});  // 4 MiB
  EXPECT_THAT(server.NewClient()->Assign("x", std::move(huge)),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(ClientSharedTensor, UpdatesSendTheBytesWhereTheyAreAndLetGoOfThem) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  VS_ASSERT_OK(
      client->GetVariable(CreateRequest("w", v1::DT_FLOAT, {3})).status());
  const std::vector<float> value = {1.5f, -2, 4};
  const std::vector<float> delta = {1, 1, 1};
  // The owners count as released once their deleters ran.
  std::atomic<int> released = 0;
  auto owner = [&released] {
    return std::shared_ptr<const void>(
        nullptr, [&released](const void*) { ++released; });
  };
  auto view = [](const std::vector<float>& elements) {
    return absl::string_view(reinterpret_cast<const char*>(elements.data()),
                             elements.size() * sizeof(float));
  };
  VS_ASSERT_OK_AND_ASSIGN(
      SharedTensor assigned,
      SharedTensor::Make(v1::DT_FLOAT, {3}, view(value), owner()));
  VS_ASSERT_OK_AND_ASSIGN(
      UpdateResult first,
      client->Assign("w", std::move(assigned), {.expected_version = 1}));
  EXPECT_EQ(first.version, 2);
  VS_ASSERT_OK_AND_ASSIGN(
      SharedTensor added,
      SharedTensor::Make(v1::DT_FLOAT, {3}, view(delta), owner()));
  VS_ASSERT_OK_AND_ASSIGN(
      UpdateResult second,
      client->AssignAdd("w", std::move(added), {.return_value = true}));
  EXPECT_EQ(second.version, 3);
  ASSERT_TRUE(second.value.has_value());
  EXPECT_THAT(second.value->flat<float>(), ::testing::ElementsAre(2.5f, -1, 5));
  // gRPC lets go of the request's bytes once it sent them.
  EXPECT_TRUE(PollUntil([&] { return released == 2; }));
}

TEST(ClientDeadline, ExpiredDeadlineIsDeadlineExceeded) {
  TestServer server;
  ClientOptions options;
  // Already past (gRPC rounds deadlines up to the next millisecond, within
  // which a local server could answer).
  options.timeout = -absl::Seconds(1);
  EXPECT_THAT(server.NewClient(options)->Read("x"),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

}  // namespace
}  // namespace varscope
