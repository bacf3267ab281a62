// `varscope checkpoint` and `backup` of a 3-shard cluster while worker
// processes train with steps that span shards: every copy holds whole steps.
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/variable_scope.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/service/server.h"
#include "tests/cli/cli_fixture.h"
#include "tests/testing/updates.h"

namespace varscope::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::varscope::testing::ChildProcess;
using ::varscope::testing::IsOk;
using ::varscope::testing::IsOkAndHolds;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;
using ::varscope::testing::TestShardOptions;

constexpr int kShards = 3;

std::string NameOn(int shard) {
  return ::varscope::testing::NameOnShard(shard, kShards, "w");
}

// The int64 scalar `name` of the store in `data_dir` (a checkpoint, or a
// restored backup), opened by a server of its own.
int64_t ValueIn(const std::string& data_dir, const std::string& name) {
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.data_dir = data_dir;
  absl::StatusOr<std::unique_ptr<server::Server>> server =
      server::Server::Start(options);
  EXPECT_THAT(server.status(), IsOk());
  if (!server.ok()) return -1;
  const absl::StatusOr<ReadResult> read =
      Client::Connect(absl::StrCat("127.0.0.1:", (*server)->port()))
          ->Read(name);
  EXPECT_THAT(read.status(), IsOk());
  return read.ok() ? read->value.flat<int64_t>()[0] : -1;
}

class ClusterCopiesTest : public ::testing::Test {
 protected:
  ClusterCopiesTest() {
    std::vector<std::string> addresses;
    for (int i = 0; i < kShards; ++i) {
      shards_.push_back(
          std::make_unique<TestServer>(TestShardOptions(i, kShards)));
      addresses.push_back(shards_[i]->address());
    }
    address_ = absl::StrJoin(addresses, ",");
    names_ = {NameOn(0), NameOn(1), NameOn(2)};
    const std::shared_ptr<Client> client = Client::Connect(address_);
    for (const std::string& name : names_) {
      VariableScope scope;
      GetVariableOptions options;
      options.shape = std::vector<int64_t>{};
      options.dtype = v1::DT_INT64;
      EXPECT_THAT(GetVariable(client, scope, name, options).status(), IsOk());
    }
    // Each step of each worker adds 1 to the three names: one batch per
    // shard under one id.
    std::vector<std::string> argv = {::varscope::testing::TestWorkerPath(),
                                     "train", address_};
    argv.insert(argv.end(), names_.begin(), names_.end());
    for (int i = 0; i < 2; ++i) {
      auto worker = ChildProcess::Start(argv);
      EXPECT_THAT(worker.status(), IsOk());
      if (worker.ok()) workers_.push_back(*std::move(worker));
    }
    for (auto& worker : workers_) {
      EXPECT_THAT(worker->ReadLine(), IsOkAndHolds(StartsWith("step 1 ")));
    }
  }

  ~ClusterCopiesTest() override {
    for (auto& worker : workers_) {
      worker->Kill(SIGTERM);
      worker->Wait();
    }
  }

  // The three names' values in the copies DIR/shard-I, each from its shard.
  std::vector<int64_t> Values(const std::string& dir) {
    std::vector<int64_t> values;
    for (int i = 0; i < kShards; ++i) {
      values.push_back(ValueIn(absl::StrCat(dir, "/shard-", i), names_[i]));
    }
    return values;
  }

  std::vector<std::unique_ptr<TestServer>> shards_;
  std::string address_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  TempDir dir_;
};

TEST_F(ClusterCopiesTest, EveryCheckpointHoldsWholeSteps) {
  int64_t last = 0;
  for (int k = 0; k < 3; ++k) {
    const std::string dir = absl::StrCat(dir_.path(), "/ckpt-", k);
    const CliResult result = RunCli({"--server", address_, "checkpoint", dir});
    ASSERT_EQ(result.code, 0) << result.err;
    const std::vector<std::string> lines =
        absl::StrSplit(result.out, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 5u) << result.out;
    EXPECT_THAT(
        lines[0],
        StartsWith("Checkpoints of the 3 shards at one consistent cut"));
    for (int i = 0; i < kShards; ++i) {
      EXPECT_THAT(lines[1 + i],
                  StartsWith(absl::StrCat("Checkpoint in ", dir, "/shard-", i,
                                          " on shard ", i, " at ",
                                          shards_[i]->address(), ": ")));
    }
    EXPECT_THAT(lines[4], StartsWith("In all: 3 variables, "));
    const std::vector<int64_t> values = Values(dir);
    EXPECT_EQ(values, std::vector<int64_t>(3, values[0])) << "checkpoint " << k;
    EXPECT_GE(values[0], std::max<int64_t>(last, 2));
    last = values[0];
  }
}

TEST_F(ClusterCopiesTest, EveryBackupHoldsWholeStepsAndRestoresByItsCut) {
  const std::string backups = dir_.path() + "/backups";
  // A backup of shard 1 alone first: its directory numbers the cluster's
  // backups one ahead of the other shards'.
  const CliResult alone = RunCli({"--server", shards_[1]->address(), "backup",
                                  absl::StrCat(backups, "/shard-1")});
  ASSERT_EQ(alone.code, 0) << alone.err;
  std::vector<std::string> cuts;
  for (int k = 1; k <= 2; ++k) {
    const CliResult result =
        RunCli({"--server", address_, "backup", backups, "--json"});
    ASSERT_EQ(result.code, 0) << result.err;
    const nlohmann::json j = nlohmann::json::parse(result.out);
    EXPECT_EQ(j["variables"], 3);
    EXPECT_EQ(j["abandoned_steps"], nlohmann::json::array());
    ASSERT_TRUE(j["cut"].is_string()) << result.out;
    cuts.push_back(j["cut"]);
    EXPECT_THAT(cuts.back(), StartsWith("cut-"));
    ASSERT_EQ(j["shards"].size(), 3u);
    for (int i = 0; i < kShards; ++i) {
      EXPECT_EQ(j["shards"][i]["backup_id"], i == 1 ? k + 1 : k);
      EXPECT_EQ(j["shards"][i]["directory"],
                absl::StrCat(backups, "/shard-", i));
    }
  }
  ASSERT_NE(cuts[0], cuts[1]);
  const CliResult list =
      RunCli({"restore", "--list", absl::StrCat(backups, "/shard-1")});
  ASSERT_EQ(list.code, 0) << list.err;
  const std::vector<std::string> rows =
      absl::StrSplit(list.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 4u) << list.out;
  EXPECT_THAT(rows[0], ::testing::EndsWith("CUT"));
  EXPECT_THAT(rows[1], ::testing::EndsWith("  -"));  // the lone backup
  EXPECT_THAT(rows[2], ::testing::EndsWith(cuts[0]));
  EXPECT_THAT(rows[3], ::testing::EndsWith(cuts[1]));

  for (int k = 1; k <= 2; ++k) {
    const std::string restored = absl::StrCat(dir_.path(), "/restored-", k);
    for (int i = 0; i < kShards; ++i) {
      const CliResult result =
          RunCli({"restore", absl::StrCat(backups, "/shard-", i),
                  absl::StrCat(restored, "/shard-", i), "--cut", cuts[k - 1]});
      ASSERT_EQ(result.code, 0) << result.err;
      EXPECT_THAT(result.out, StartsWith(absl::StrCat(
                                  "Restored backup ", i == 1 ? k + 1 : k,
                                  " of ", backups, "/shard-", i, " into ")));
      EXPECT_THAT(result.out, HasSubstr(absl::StrCat("It is shard ", i,
                                                     " of 3 of cluster "
                                                     "test-cluster")));
    }
    const std::vector<int64_t> values = Values(restored);
    EXPECT_EQ(values, std::vector<int64_t>(3, values[0])) << "backup " << k;
    EXPECT_GE(values[0], 2);
  }

  const CliResult unknown =
      RunCli({"restore", absl::StrCat(backups, "/shard-1"),
              dir_.path() + "/restored-x", "--cut", "cut-0123"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_EQ(
      unknown.err,
      absl::StrCat("varscope restore: NOT_FOUND: Backup directory ", backups,
                   "/shard-1 holds no backup of cut cut-0123 (its "
                   "backups of cuts: 2 of ",
                   cuts[0], ", 3 of ", cuts[1], ")\n"));
  const CliResult both = RunCli({"restore", absl::StrCat(backups, "/shard-1"),
                                 dir_.path() + "/restored-y", "--cut", cuts[0],
                                 "--backup-id", "2"});
  EXPECT_EQ(both.code, 2);
  EXPECT_THAT(both.err, StartsWith("--backup-id excludes --cut\n"));
}

TEST_F(ClusterCopiesTest, AShardThatCannotCopyFailsTheCommandNamingIt) {
  // Shard 1's directory is taken by a file.
  const std::string dir = dir_.path() + "/ckpt";
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/shard-1") << "x"; }
  const CliResult result = RunCli({"--server", address_, "checkpoint", dir});
  EXPECT_EQ(result.code, 3);
  EXPECT_THAT(result.err, HasSubstr(absl::StrCat("Shard 1 of 3 at ",
                                                 shards_[1]->address(), ": ")));
  // Every shard resumed: a change that is not retried goes through.
  ClientOptions once;
  once.max_attempts = 1;
  const int64_t one = 1;
  EXPECT_THAT(Client::Connect(address_, once)
                  ->AssignAdd(names_[1], Tensor::FromVector<int64_t>(
                                             v1::DT_INT64, {}, {&one, 1}))
                  .status(),
              IsOk());
}

}  // namespace
}  // namespace varscope::cli::testing
