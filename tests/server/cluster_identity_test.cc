// A store's cluster identity: configured by flags or TF_CONFIG, recorded at
// the first start, kept by restarts, backups, checkpoints and restores, and
// refused when a later start says otherwise.
#include "server/service/cluster_identity.h"

#include <google/protobuf/util/message_differencer.h>
#include <sys/wait.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/admin_client.h"
#include "client/client.h"
#include "common/cluster.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "server/storage/storage.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope::server {
namespace {

using ::testing::HasSubstr;
using ::varscope::testing::ChildProcess;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::IsOk;
using ::varscope::testing::IsOkAndHolds;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;
using ::varscope::testing::TestShardFlags;
using ::varscope::testing::TestShardOptions;

ClusterOptions Flags(std::vector<std::string> shards, int64_t index,
                     std::string id = "") {
  ClusterOptions options;
  options.shards = std::move(shards);
  options.shard_index = index;
  options.cluster_id = std::move(id);
  return options;
}

v1::ClusterIdentity Identity(std::vector<std::string> shards, int index,
                             const std::string& id) {
  v1::ClusterIdentity identity;
  identity.set_cluster_id(id);
  identity.set_shard_index(index);
  identity.set_shard_count(static_cast<int>(shards.size()));
  identity.mutable_shards()->Assign(shards.begin(), shards.end());
  return identity;
}

MATCHER_P(SameIdentity, expected,
          absl::StrCat("is ", DescribeShard(expected))) {
  return google::protobuf::util::MessageDifferencer::Equals(arg, expected);
}

TEST(ConfiguredIdentity, FromFlagsWithADerivedOrGivenId) {
  absl::StatusOr<std::optional<v1::ClusterIdentity>> identity =
      ConfiguredIdentity(Flags({"a:1", "b:1", "c:1"}, 2));
  ASSERT_THAT(identity.status(), IsOk());
  ASSERT_TRUE(identity->has_value());
  EXPECT_THAT(**identity,
              SameIdentity(Identity({"a:1", "b:1", "c:1"}, 2,
                                    DerivedClusterId({"a:1", "b:1", "c:1"}))));
  // Every shard of one list derives one id; another order, another id.
  EXPECT_EQ(
      DerivedClusterId({"a:1", "b:1", "c:1"}),
      (*ConfiguredIdentity(Flags({"a:1", "b:1", "c:1"}, 0)))->cluster_id());
  EXPECT_NE(DerivedClusterId({"a:1", "b:1", "c:1"}),
            DerivedClusterId({"b:1", "a:1", "c:1"}));
  EXPECT_THAT(DerivedClusterId({"a:1", "b:1", "c:1"}),
              ::testing::MatchesRegex("[0-9a-f]{16}"));
  EXPECT_EQ(
      (*ConfiguredIdentity(Flags({"a:1", "b:1"}, 0, "prod-1.x")))->cluster_id(),
      "prod-1.x");
  EXPECT_THAT(ConfiguredIdentity(ClusterOptions()),
              IsOkAndHolds(::testing::Eq(std::nullopt)));
}

TEST(ConfiguredIdentity, BadFlagsAreInvalidArgumentNamingTheFlag) {
  const std::string list =
      "every shard's HOST:PORT, comma-separated, in cluster order";
  const std::pair<ClusterOptions, std::string> cases[] = {
      {Flags({}, 0),
       absl::StrCat("--shard-index needs --cluster (", list, ")")},
      {Flags({}, -1, "c"),
       absl::StrCat("--cluster-id needs --cluster (", list, ")")},
      {Flags({"a:1", "b:1"}, -1),
       "--cluster needs --shard-index (this server's position in the list, "
       "from 0)"},
      {Flags({"a:1", "b:1"}, 2),
       "--shard-index=2 is not a position in --cluster (0 to 1)"},
      {Flags({"a:1", "", "b:1"}, 0),
       absl::StrCat("--cluster has the entry ''; give ", list)},
      {Flags({"a:1", "b :1"}, 0),
       absl::StrCat("--cluster has the entry 'b :1'; give ", list)},
      {Flags({"a:1", "b:1", "a:1"}, 0),
       absl::StrCat("--cluster lists a:1 twice; give ", list)},
      {Flags({"a:1"}, 0, "a b"),
       "--cluster-id='a b' is not 1 to 64 letters, digits, '.', '_' or '-'"},
      {Flags({"a:1"}, 0, std::string(65, 'x')),
       absl::StrCat("--cluster-id='", std::string(65, 'x'),
                    "' is not 1 to 64 letters, digits, '.', '_' or '-'")},
  };
  for (const auto& [flags, message] : cases) {
    EXPECT_THAT(ConfiguredIdentity(flags).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, message));
  }
}

TEST(ClusterOptionsFromTfConfig, APsTaskIsItsShardOfClusterPs) {
  absl::StatusOr<std::optional<ClusterOptions>> options =
      ClusterOptionsFromTfConfig(
          R"({"cluster": {"ps": ["p0:2222", "p1:2222"], "worker": ["w:1"]},
              "task": {"type": "ps", "index": 1}})");
  ASSERT_THAT(options.status(), IsOk());
  ASSERT_TRUE(options->has_value());
  EXPECT_EQ((*options)->shards,
            (std::vector<std::string>{"p0:2222", "p1:2222"}));
  EXPECT_EQ((*options)->shard_index, 1);
  EXPECT_EQ((*options)->cluster_id, "");
  // Not a parameter server's: no identity from it.
  for (const char* config :
       {"", R"({"cluster": {"ps": ["p0:2222"]}})",
        R"({"cluster": {"ps": ["p0:2222"]}, "task": {"type": "worker",
            "index": 0}})"}) {
    EXPECT_THAT(ClusterOptionsFromTfConfig(config),
                IsOkAndHolds(::testing::Eq(std::nullopt)))
        << config;
  }
  EXPECT_THAT(
      ClusterOptionsFromTfConfig(
          R"({"cluster": {"ps": ["p0:2222"]}, "task": {"type": "ps",
              "index": 1}})")
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "TF_CONFIG's task is ps task 1, but its cluster.ps has no task "
               "1 (it lists 1)"));
  EXPECT_THAT(
      ClusterOptionsFromTfConfig(R"({"task": {"type": "ps", "index": -1}})")
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "TF_CONFIG's task.index is not a non-negative integer"));
  EXPECT_THAT(ClusterOptionsFromTfConfig("{oops").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "TF_CONFIG is not a JSON object"));
}

// Starts a server on `data_dir` as `cluster` and returns the identity it
// reports, or its start error.
absl::StatusOr<v1::ClusterIdentity> StartAndAsk(
    const std::string& data_dir,
    const std::optional<v1::ClusterIdentity>& cluster) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.data_dir = data_dir;
  options.cluster = cluster;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  if (!server.ok()) return server.status();
  absl::StatusOr<v1::ServerInfo> info =
      Client::Connect(absl::StrCat("127.0.0.1:", (*server)->port()))
          ->GetServerInfo();
  if (!info.ok()) return info.status();
  EXPECT_THAT(info->cluster(), SameIdentity((*server)->cluster()));
  return info->cluster();
}

// The refusal to start the store of `recorded` in `dir` as `started`.
std::string Refusal(const std::string& dir, const std::string& recorded,
                    const std::string& started, const std::string& flags) {
  return absl::StrCat(
      "Data directory ", dir, " is the store of ", recorded,
      ", but varscoped was started as ", started,
      ". A store keeps the place it was first started in (clients find its "
      "variables by that place): start it with ",
      flags, ", or start the new shard on a new data directory");
}

constexpr char kNoFlags[] = "no cluster flags and no ps task's TF_CONFIG";

TEST(RecordedIdentity, TheFirstStartRecordsItAndLaterStartsKeepIt) {
  TempDir dir;
  const v1::ClusterIdentity shard1 = Identity({"a:1", "b:1", "c:1"}, 1, "c1");
  EXPECT_THAT(StartAndAsk(dir.path(), shard1),
              IsOkAndHolds(SameIdentity(shard1)));
  EXPECT_THAT(StartAndAsk(dir.path(), std::nullopt),
              IsOkAndHolds(SameIdentity(shard1)));
  EXPECT_THAT(StartAndAsk(dir.path(), shard1),
              IsOkAndHolds(SameIdentity(shard1)));
  const std::string recorded =
      "shard 1 of 3 of cluster c1 (shards a:1,b:1,c:1)";
  const std::string flags = absl::StrCat(
      "--cluster=a:1,b:1,c:1 --shard-index=1 --cluster-id=c1 (or with ",
      kNoFlags, ")");
  EXPECT_THAT(
      StartAndAsk(dir.path(), Identity({"a:1", "b:1", "c:1"}, 0, "c1")),
      StatusIs(
          absl::StatusCode::kFailedPrecondition,
          Refusal(dir.path(), recorded,
                  "shard 0 of 3 of cluster c1 (shards a:1,b:1,c:1)", flags)));
  EXPECT_THAT(
      StartAndAsk(dir.path(), Identity({"b:1", "a:1", "c:1"}, 1, "c1")),
      StatusIs(
          absl::StatusCode::kFailedPrecondition,
          Refusal(dir.path(), recorded,
                  "shard 1 of 3 of cluster c1 (shards b:1,a:1,c:1)", flags)));
  EXPECT_THAT(StartAndAsk(dir.path(), Identity({"a:1", "b:1"}, 1, "c1")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(StartAndAsk(dir.path(), Identity({"a:1", "b:1", "c:1"}, 1, "c2")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // A refused start changed nothing.
  EXPECT_THAT(StartAndAsk(dir.path(), std::nullopt),
              IsOkAndHolds(SameIdentity(shard1)));
}

// A store a re-shard moved records where it was (resharded_from) and
// starts with the new list's flags, not the old.
TEST(RecordedIdentity, AReshardedStoreStartsWithTheNewListsFlags) {
  TempDir dir;
  const v1::ClusterIdentity before = Identity({"a:1", "b:1"}, 1, "c1");
  const v1::ClusterIdentity after = Identity({"a:1", "b:1", "c:1"}, 1, "c2");
  ASSERT_THAT(StartAndAsk(dir.path(), before), IsOk());
  v1::ClusterIdentity recorded = after;
  *recorded.mutable_resharded_from() = before;
  {
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = dir.path();
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
    ASSERT_THAT(server.status(), IsOk());
    v1::SetClusterIdentityRequest request;
    *request.mutable_identity() = recorded;
    ASSERT_THAT(
        AdminClient::Connect(absl::StrCat("127.0.0.1:", (*server)->port()),
                             absl::Seconds(30))
            ->SetClusterIdentity(request)
            .status(),
        IsOk());
  }
  EXPECT_THAT(StartAndAsk(dir.path(), after),
              IsOkAndHolds(SameIdentity(recorded)));
  EXPECT_THAT(StartAndAsk(dir.path(), std::nullopt),
              IsOkAndHolds(SameIdentity(recorded)));
  EXPECT_THAT(StartAndAsk(dir.path(), before),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(RecordedIdentity, ADerivedIdIsNotRepeatedInTheAdvice) {
  TempDir dir;
  const v1::ClusterIdentity shard0 =
      **ConfiguredIdentity(Flags({"a:1", "b:1"}, 0));
  ASSERT_THAT(StartAndAsk(dir.path(), shard0), IsOk());
  EXPECT_THAT(
      StartAndAsk(dir.path(), **ConfiguredIdentity(Flags({"a:1", "b:1"}, 1))),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr(absl::StrCat("start it with --cluster=a:1,b:1 "
                                      "--shard-index=0 (or with ",
                                      kNoFlags, ")"))));
}

TEST(RecordedIdentity, AStandaloneServerIsShardZeroOfOneAndStaysOne) {
  TempDir dir;
  v1::ClusterIdentity standalone;
  standalone.set_shard_count(1);
  EXPECT_THAT(StartAndAsk(dir.path(), std::nullopt),
              IsOkAndHolds(SameIdentity(standalone)));
  EXPECT_THAT(
      StartAndAsk(dir.path(), Identity({"a:1", "b:1", "c:1"}, 1, "c1")),
      StatusIs(
          absl::StatusCode::kFailedPrecondition,
          Refusal(dir.path(), "a standalone server (not a shard of a cluster)",
                  "shard 1 of 3 of cluster c1 (shards a:1,b:1,c:1)",
                  kNoFlags)));
}

TEST(RecordedIdentity, AStoreFromBeforeIdentitiesRecordsWhatItIsStartedWith) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<Storage>> storage =
        Storage::Open(StorageOptions(), dir.path());
    ASSERT_THAT(storage.status(), IsOk());
    v1::StoredVariable meta;
    meta.set_chunk_bytes(1 << 20);
    v1::VariableInfo& info = *meta.mutable_info();
    info.set_name("w");
    info.set_dtype(v1::DT_FLOAT);
    info.mutable_shape()->add_dims(1);
    info.set_byte_size(4);
    info.set_version(1);
    StorageBatch batch;
    batch.PutVariable(meta, std::string(4, '\0'));
    ASSERT_THAT((*storage)->Write(batch), IsOk());
    EXPECT_THAT((*storage)->ReadClusterIdentity(),
                IsOkAndHolds(::testing::Eq(std::nullopt)));
  }
  const v1::ClusterIdentity shard2 = Identity({"a:1", "b:1", "c:1"}, 2, "c1");
  EXPECT_THAT(StartAndAsk(dir.path(), shard2),
              IsOkAndHolds(SameIdentity(shard2)));
  EXPECT_THAT(StartAndAsk(dir.path(), std::nullopt),
              IsOkAndHolds(SameIdentity(shard2)));
}

TEST(RecordedIdentity, BackupsCheckpointsAndRestoresKeepIt) {
  TestServer shard(TestShardOptions(1, 3));
  const v1::ClusterIdentity identity = *TestShardOptions(1, 3).cluster;
  // One address: this shard alone, whatever its place (as an operator's).
  std::shared_ptr<Client> client = shard.NewClient();
  ASSERT_THAT(
      client->GetVariable(CreateRequest("w", v1::DT_FLOAT, {2})).status(),
      IsOk());
  TempDir copies;
  const std::string backups = copies.path() + "/backups";
  const std::string checkpoint = copies.path() + "/checkpoint";
  std::unique_ptr<AdminClient> admin =
      AdminClient::Connect(shard.address(), absl::Minutes(5));
  v1::BackupRequest backup;
  backup.set_directory(backups);
  ASSERT_THAT(admin->Backup(backup).status(), IsOk());
  v1::CheckpointRequest checkpoint_request;
  checkpoint_request.set_directory(checkpoint);
  ASSERT_THAT(admin->Checkpoint(checkpoint_request).status(), IsOk());
  for (const std::string& source : {backups, checkpoint}) {
    SCOPED_TRACE(source);
    TempDir restored;
    absl::StatusOr<RestoredStore> store =
        Storage::Restore(source, 0, restored.path());
    ASSERT_THAT(store.status(), IsOk());
    ASSERT_TRUE(store->cluster.has_value());
    EXPECT_THAT(*store->cluster, SameIdentity(identity));
    EXPECT_EQ(store->contents.variables, 1);
    EXPECT_THAT(StartAndAsk(restored.path(), std::nullopt),
                IsOkAndHolds(SameIdentity(identity)));
    EXPECT_THAT(StartAndAsk(restored.path(), *TestShardOptions(0, 3).cluster),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
}

// The exit status and output (stdout and stderr) of varscoped run with
// `args` on a new data directory `dir`, which must not start.
std::pair<int, std::string> RunRefused(const std::string& dir,
                                       std::vector<std::string> args) {
  // Only the refusal: no info events.
  args.insert(args.begin(),
              {::varscope::testing::VarscopedPath(), "--listen=127.0.0.1:0",
               absl::StrCat("--data-dir=", dir), "--log-level=warning"});
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(args, /*capture_stderr=*/true);
  EXPECT_THAT(child.status(), IsOk());
  if (!child.ok()) return {-1, ""};
  std::string output;
  for (absl::StatusOr<std::string> line = (*child)->ReadLine(); line.ok();
       line = (*child)->ReadLine()) {
    absl::StrAppend(&output, *line, "\n");
  }
  const int status = (*child)->Wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(Varscoped, StartedAsAnotherShardExitsOneNamingBoth) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(dir.path(), TestShardFlags(1, 3));
    ASSERT_THAT(server.status(), IsOk());
    EXPECT_EQ((*server)->serving_line(),
              absl::StrCat("varscoped serving on ", (*server)->address(),
                           " (data dir ", dir.path(),
                           ", durability wal, shard 1 of 3 of cluster "
                           "test-cluster (shards "
                           "shard0:7070,shard1:7070,shard2:7070))"));
    (*server)->process().Kill(SIGTERM);
    (*server)->process().Wait();
  }
  const std::string recorded =
      "shard 1 of 3 of cluster test-cluster (shards "
      "shard0:7070,shard1:7070,shard2:7070)";
  EXPECT_EQ(
      RunRefused(dir.path(), TestShardFlags(2, 3)),
      std::make_pair(
          1, absl::StrCat(
                 "varscoped: FAILED_PRECONDITION: ",
                 Refusal(dir.path(), recorded,
                         "shard 2 of 3 of cluster test-cluster (shards "
                         "shard0:7070,shard1:7070,shard2:7070)",
                         absl::StrCat("--cluster=shard0:7070,shard1:7070,"
                                      "shard2:7070 --shard-index=1 "
                                      "--cluster-id=test-cluster (or with ",
                                      kNoFlags, ")")),
                 "\n")));
}

TEST(Varscoped, BadClusterFlagsExitTwo) {
  TempDir dir;
  EXPECT_EQ(RunRefused(dir.path(), {"--cluster=a:1,b:1"}),
            std::make_pair(2, std::string("varscoped: INVALID_ARGUMENT: "
                                          "--cluster needs --shard-index "
                                          "(this server's position in the "
                                          "list, from 0)\n")));
  EXPECT_EQ(RunRefused(dir.path(), {"--no-such-flag"}).first, 2);
  EXPECT_THAT(RunRefused(dir.path(), {"--shard-index=-1"}),
              ::testing::Pair(2, HasSubstr("--shard-index")));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/CURRENT"));
}

TEST(Varscoped, APsTaskOfTfConfigIsItsShardUnlessFlagsSayOtherwise) {
  const std::string tf_config =
      R"(TF_CONFIG={"cluster": {"ps": ["p0:2222", "p1:2222"], "worker": )"
      R"(["w0:1"]}, "task": {"type": "ps", "index": 1}})";
  TempDir dir;
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(dir.path(), {}, 0, {tf_config});
  ASSERT_THAT(server.status(), IsOk());
  const v1::ClusterIdentity expected = Identity(
      {"p0:2222", "p1:2222"}, 1, DerivedClusterId({"p0:2222", "p1:2222"}));
  EXPECT_THAT((*server)->serving_line(),
              HasSubstr(absl::StrCat(", ", DescribeShard(expected), ")")));
  absl::StatusOr<v1::ServerInfo> info =
      Client::Connect((*server)->address())->GetServerInfo();
  ASSERT_THAT(info.status(), IsOk());
  EXPECT_THAT(info->cluster(), SameIdentity(expected));

  TempDir flagged;
  server = ServerProcess::Start(flagged.path(), TestShardFlags(0, 2), 0,
                                {tf_config});
  ASSERT_THAT(server.status(), IsOk());
  info = Client::Connect((*server)->address())->GetServerInfo();
  ASSERT_THAT(info.status(), IsOk());
  EXPECT_THAT(info->cluster(), SameIdentity(*TestShardOptions(0, 2).cluster));
}

}  // namespace
}  // namespace varscope::server
