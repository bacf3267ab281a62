// End-to-end with real processes: crashes, signals, and clients racing from
// several processes.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

using ::varscope::testing::ChildProcess;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestWorkerPath;

TEST(ProcessTest, RacingCreatorsInSeveralProcessesCreateOnce) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(auto server, ServerProcess::Start(dir.path()));
  for (int round = 0; round < 3; ++round) {
    const std::string name = absl::StrCat("race/p", round);
    std::vector<std::unique_ptr<ChildProcess>> workers;
    for (int i = 0; i < 4; ++i) {
      VS_ASSERT_OK_AND_ASSIGN(
          auto worker, ChildProcess::Start(
                           {TestWorkerPath(), "get", server->address(), name}));
      workers.push_back(std::move(worker));
    }
    int created = 0;
    std::set<std::string> digests;
    for (auto& worker : workers) {
      VS_ASSERT_OK_AND_ASSIGN(std::string line, worker->ReadLine());
      created += absl::StartsWith(line, "created=1");
      digests.insert(line.substr(line.find("digest=")));
      EXPECT_EQ(worker->Wait(), 0);
    }
    EXPECT_EQ(created, 1) << name;
    EXPECT_EQ(digests.size(), 1u) << "workers saw different initial values";
  }
}

TEST(ProcessTest, KilledServerKeepsEveryAcknowledgedUpdate) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(auto server, ServerProcess::Start(dir.path()));
  VS_ASSERT_OK_AND_ASSIGN(
      auto worker, ChildProcess::Start({TestWorkerPath(), "add",
                                        server->address(), "n", "1000000"}));
  int64_t acked = 0;
  while (acked < 300) {
    VS_ASSERT_OK_AND_ASSIGN(std::string line, worker->ReadLine());
    ASSERT_TRUE(absl::SimpleAtoi(line.substr(6), &acked)) << line;
  }
  server->process().Kill(SIGKILL);
  EXPECT_EQ(WTERMSIG(server->process().Wait()), SIGKILL);
  // Drain what the worker saw acknowledged before the server died.
  for (;;) {
    absl::StatusOr<std::string> line = worker->ReadLine();
    if (!line.ok()) break;
    ASSERT_TRUE(absl::SimpleAtoi(line->substr(6), &acked)) << *line;
  }
  EXPECT_NE(worker->Wait(), 0);  // it failed once the server was gone

  VS_ASSERT_OK_AND_ASSIGN(auto restarted, ServerProcess::Start(dir.path()));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read,
                          Client::Connect(restarted->address())->Read("n"));
  // Version v holds v - 1 increments; at most one unacknowledged update may
  // also have landed.
  EXPECT_GE(read.version, acked);
  EXPECT_LE(read.version, acked + 1);
  EXPECT_EQ(read.value.flat<int64_t>()[0], read.version - 1);
}

TEST(ProcessTest, SigtermDrainsAndExitsCleanly) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(auto server, ServerProcess::Start(dir.path()));
  server->process().Kill(SIGTERM);
  const int status = server->process().Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The store closed cleanly: a new server opens it at once.
  VS_ASSERT_OK(ServerProcess::Start(dir.path()).status());
}

// compose.yaml keeps the drain within podman's stop timeout with it.
TEST(ProcessTest, DrainSecondsSetsTheDrainOnSigterm) {
  TempDir dir;
  auto [status, output] =
      ::varscope::testing::RunServer(dir.path(), {"--drain-seconds=2.5"});
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
  EXPECT_THAT(output, ::testing::ContainsRegex(
                          "shutdown signal=SIGTERM drain_seconds=2.5\n"));

  std::tie(status, output) =
      ::varscope::testing::RunServer(dir.path(), {"--drain-seconds=-1"});
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 2) << output;
  EXPECT_THAT(output, ::testing::HasSubstr("--drain-seconds"));
}

// The container image's entrypoint passes --listen and --data-dir; the same
// flags given after them (`podman run IMAGE --data-dir=...`) win.
TEST(ProcessTest, LaterFlagsOverrideEarlierOnes) {
  TempDir dir;
  const std::string first = absl::StrCat(dir.path(), "/first");
  const std::string later = absl::StrCat(dir.path(), "/later");
  VS_ASSERT_OK_AND_ASSIGN(
      auto server,
      ServerProcess::Start(first, {absl::StrCat("--data-dir=", later)}));
  EXPECT_TRUE(std::filesystem::is_directory(later));
  EXPECT_FALSE(std::filesystem::exists(first));
}

// Byte flags take units, as the README writes them (--memory-budget=1GiB).
TEST(ProcessTest, ByteFlagsTakeUnits) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(
      auto server,
      ServerProcess::Start(dir.path(),
                           {"--max-variable-bytes=1KiB", "--memory-budget=1GiB",
                            "--chunk-bytes=64kib"}));
  std::shared_ptr<Client> client = Client::Connect(server->address());
  VS_EXPECT_OK(
      client->GetVariable(CreateRequest("fits", v1::DT_FLOAT, {256})).status());
  EXPECT_THAT(client->GetVariable(CreateRequest("over", v1::DT_FLOAT, {257})),
              ::varscope::testing::StatusIs(
                  absl::StatusCode::kResourceExhausted,
                  ::testing::HasSubstr("over this server's limit of 1024 "
                                       "(--max-variable-bytes)")));

  for (const char* bad :
       {"--memory-budget=lots", "--memory-budget=1XB", "--chunk-bytes=-1KiB"}) {
    const auto [status, output] =
        ::varscope::testing::RunServer(dir.path(), {bad});
    ASSERT_TRUE(WIFEXITED(status)) << output;
    EXPECT_EQ(WEXITSTATUS(status), 2) << bad << ": " << output;
    EXPECT_THAT(output, ::testing::HasSubstr(std::string(bad).substr(
                            0, std::string(bad).find('='))))
        << output;
  }
}

TEST(ProcessTest, SecondServerOnTheSameDirectoryIsRefused) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(auto first, ServerProcess::Start(dir.path()));
  EXPECT_THAT(ServerProcess::Start(dir.path()),
              ::varscope::testing::StatusIs(absl::StatusCode::kNotFound));
}

// gRPC would share a served port (SO_REUSEPORT) and split the clients
// between two stores at random.
TEST(ProcessTest, SecondServerOnAServedPortExitsAndTheFirstKeepsServing) {
  TempDir first_dir, second_dir;
  VS_ASSERT_OK_AND_ASSIGN(auto first, ServerProcess::Start(first_dir.path()));
  std::shared_ptr<Client> client = Client::Connect(first->address());
  VS_ASSERT_OK(
      client->GetVariable(CreateRequest("x", v1::DT_FLOAT, {3})).status());

  VS_ASSERT_OK_AND_ASSIGN(
      auto second,
      ChildProcess::Start({::varscope::testing::VarscopedPath(),
                           absl::StrCat("--listen=", first->address()),
                           absl::StrCat("--data-dir=", second_dir.path())},
                          /*capture_stderr=*/true));
  std::vector<std::string> lines;
  for (absl::StatusOr<std::string> line = second->ReadLine(); line.ok();
       line = second->ReadLine()) {
    ASSERT_FALSE(absl::StrContains(*line, "serving on")) << *line;
    lines.push_back(*line);
  }
  const int status = second->Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_THAT(lines,
              ::testing::Contains(absl::StrCat(
                  "varscoped: UNAVAILABLE: Cannot listen on ", first->address(),
                  ": the address is in use (is another varscoped "
                  "serving it?)")));

  // Every new connection reaches the first server's store.
  for (int i = 0; i < 12; ++i) {
    VS_ASSERT_OK_AND_ASSIGN(
        v1::VariableInfo info,
        Client::Connect(first->address(), {.own_connection = true})->Stat("x"));
    EXPECT_EQ(info.version(), 1);
  }
}

}  // namespace
}  // namespace varscope
