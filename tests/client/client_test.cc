// Client retries and limits against real servers.
#include "client/client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;

// A port that was free a moment ago.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(ClientRetry, IdempotentCallsRetryUntilTheServerComesUp) {
  TempDir dir;
  const int port = FreePort();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  ClientOptions options;
  options.max_attempts = 1200;  // about two minutes: however slow the start
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(100);
  std::shared_ptr<Client> client = Client::Connect(address, options);

  // Nothing listens yet: an update that is not numbered for exactly-once
  // application cannot be retried safely, so it fails at once.
  ClientOptions unnumbered = options;
  unnumbered.exactly_once = false;
  EXPECT_THAT(Client::Connect(address, unnumbered)
                  ->AssignAdd("x", Tensor(v1::DT_FLOAT, {1})),
              StatusIs(absl::StatusCode::kUnavailable));

  std::unique_ptr<server::Server> server;
  std::thread starter([&] {
    absl::SleepFor(absl::Milliseconds(300));
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
  std::shared_ptr<Client> client =
      Client::Connect(absl::StrCat("127.0.0.1:", FreePort()), options);
  EXPECT_THAT(client->Read("x"), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(ClientLimits, MessageOverTheServerLimitIsResourceExhausted) {
  server::ServerOptions options;
  options.max_message_bytes = 1000;
  TestServer server(options);
  Tensor huge(v1::DT_FLOAT, {1 << 20});  // 4 MiB
  EXPECT_THAT(server.NewClient()->Assign("x", std::move(huge)),
              StatusIs(absl::StatusCode::kResourceExhausted));
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
