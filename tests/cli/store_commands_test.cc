// checkpoint, backup and restore: whole-store copies from the command line.
#include "client/cli/store_commands.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using Json = nlohmann::json;

class StoreCommandsTest : public CliTest {
 protected:
  void SetUp() override { Populate(); }

  std::string Path(const std::string& name) const {
    return absl::StrCat(dir_.path(), "/", name);
  }

  // Every variable's version and bytes, by name.
  static std::map<std::string, std::pair<int64_t, std::string>> Contents(
      Client& client) {
    std::map<std::string, std::pair<int64_t, std::string>> contents;
    v1::ListVariablesRequest request;
    request.set_recursive(true);
    absl::StatusOr<v1::ListVariablesResponse> page =
        client.ListVariables(request);
    EXPECT_TRUE(page.ok()) << page.status();
    for (const auto& entry : page->entries()) {
      absl::StatusOr<ReadResult> read = client.Read(entry.name());
      EXPECT_TRUE(read.ok()) << read.status();
      contents[entry.name()] = {read->version, read->value.bytes()};
    }
    return contents;
  }

  // The contents of a server started on `data_dir`.
  static std::map<std::string, std::pair<int64_t, std::string>> Served(
      const std::string& data_dir) {
    server::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = data_dir;
    absl::StatusOr<std::unique_ptr<server::Server>> server =
        server::Server::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return {};
    return Contents(
        *Client::Connect(absl::StrCat("127.0.0.1:", (*server)->port())));
  }

  ::varscope::testing::TempDir dir_;
};

TEST_F(StoreCommandsTest, CheckpointIsADataDirectoryOfTheServersContents) {
  CliResult r = Run({"checkpoint", Path("ckpt")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, MatchesRegex(absl::StrCat(
                         "Checkpoint in ", Path("ckpt"),
                         " on the server: 7 variables, [0-9]+ B, write "
                         "sequence [0-9]+, in [0-9]+\\.[0-9][0-9] s\n")));

  r = Run({"restore", Path("ckpt"), Path("data")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              MatchesRegex(absl::StrCat(
                  "Restored checkpoint ", Path("ckpt"), " into ", Path("data"),
                  ": 7 variables, [0-9]+ B, write sequence [0-9]+\n"
                  "Serve it with: varscoped --data-dir=",
                  Path("data"), "\n")));
  EXPECT_EQ(Served(Path("data")), Contents(*client_));
}

TEST_F(StoreCommandsTest, ARestoredShardKeepsItsPlaceInItsCluster) {
  ::varscope::testing::TestServer shard(
      ::varscope::testing::TestShardOptions(1, 2));
  ASSERT_EQ(
      RunCli({"--server", shard.address(), "checkpoint", Path("ckpt")}).code,
      0);
  CliResult r = Run({"restore", Path("ckpt"), Path("data")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr(absl::StrCat(
                  "\nIt is shard 1 of 2 of cluster test-cluster (shards ",
                  ::varscope::testing::TestShardList(2),
                  "), and stays that shard\nServe it with: varscoped "
                  "--data-dir=",
                  Path("data"), "\n")));
  r = Run({"--json", "restore", Path("ckpt"), Path("json")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["cluster"],
            absl::StrCat("shard 1 of 2 of cluster test-cluster (shards ",
                         ::varscope::testing::TestShardList(2), ")"));
}

TEST_F(StoreCommandsTest, CheckpointNeedsANewDirectoryUnderTheBackupRoot) {
  ASSERT_EQ(Run({"checkpoint", Path("ckpt")}).code, 0);
  CliResult r = Run({"checkpoint", Path("ckpt")});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, absl::StrCat("varscope checkpoint: ALREADY_EXISTS: Cannot "
                                "write a checkpoint into ",
                                Path("ckpt"),
                                ": it exists (a checkpoint goes into a new "
                                "directory)\n"));
  r = Run({"checkpoint", "../ckpt"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, absl::StrCat("varscope checkpoint: INVALID_ARGUMENT: The "
                                "directory '../ckpt' has a '..' component; "
                                "name one under the backup root ",
                                varscope::testing::TempRoot(), "\n"));
}

TEST_F(StoreCommandsTest, BackupsAreIncrementalListedAndRestoredById) {
  const std::map<std::string, std::pair<int64_t, std::string>> first =
      Contents(*client_);
  CliResult r = Run({"backup", Path("backups")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              MatchesRegex(absl::StrCat(
                  "Backup 1 in ", Path("backups"),
                  " on the server: 7 variables, [0-9]+ B, write sequence "
                  "[0-9]+; [0-9]+ files, [0-9.]+ [KM]?i?B, [0-9.]+ [KM]?i?B "
                  "new, in [0-9]+\\.[0-9][0-9] s\n")));

  ASSERT_EQ(Run({"set", "global_step", "--value", "41"}).code, 0);
  r = Run({"--json", "backup", Path("backups"), "--versions"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json second = Json::parse(r.out);
  EXPECT_EQ(second["backup_id"], 2);
  EXPECT_EQ(second["variables"], 7);
  EXPECT_EQ(second["versions"]["global_step"],
            first.at("global_step").first + 1);
  EXPECT_LT(second["added_bytes"].get<int64_t>(),
            second["size_bytes"].get<int64_t>());

  r = Run({"restore", "--list", Path("backups")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              MatchesRegex("  ID  CREATED +VARIABLES +BYTES +FILES +SIZE "
                           "+NEW  CUT\n   1  [0-9TZ:.-]+ +7 .*  -\n"
                           "   2  .*  -\n"));

  r = Run({"restore", Path("backups"), Path("one"), "--backup-id", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr(absl::StrCat("Restored backup 1 of ", Path("backups"),
                                     " into ", Path("one"), ": 7 variables")));
  EXPECT_EQ(Served(Path("one")), first);
  r = Run({"restore", Path("backups"), Path("latest")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Restored backup 2 of "));
  EXPECT_EQ(Served(Path("latest")), Contents(*client_));

  r = Run({"restore", Path("backups"), Path("one")});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, absl::StrCat("varscope restore: FAILED_PRECONDITION: "
                                "Refusing to restore into ",
                                Path("one"),
                                ": it exists and is not empty (restore into "
                                "a new or empty directory)\n"));
  r = Run({"restore", Path("backups"), Path("nine"), "--backup-id", "9"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            absl::StrCat("varscope restore: NOT_FOUND: Backup 9 is not "
                         "in backup directory ",
                         Path("backups"), " (it holds backups 1 to 2)\n"));
  r = Run({"restore", Path("backups")});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("restore needs the new data directory"));
}

TEST_F(StoreCommandsTest, BackupKeepDeletesTheOldestButNeverTheNewest) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Run({"backup", Path("backups")}).code, 0);
  }
  ASSERT_EQ(Run({"set", "global_step", "--value", "41"}).code, 0);
  CliResult r = Run({"backup", Path("backups"), "--keep", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              MatchesRegex("Backup 4 in .*\nDeleted backups 1, 2 \\(keeping "
                           "the newest 2\\)\n"));
  r = Run({"restore", "--list", Path("backups")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, MatchesRegex("  ID .*\n   3  .*\n   4  .*\n"));
  // A deleted backup's files are gone, not only its listing.
  for (const char* gone : {"meta/1", "meta/2", "private/1", "private/2"}) {
    EXPECT_FALSE(std::filesystem::exists(Path("backups/") + gone)) << gone;
  }

  r = Run({"--json", "backup", Path("backups"), "--keep", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json only = Json::parse(r.out);
  EXPECT_EQ(only["backup_id"], 5);
  EXPECT_EQ(only["deleted_backup_ids"], Json::array({3, 4}));
  r = Run({"backup", Path("backups"), "--keep", "10"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("Deleted")));
  // The newest backup is whole.
  ASSERT_EQ(Run({"restore", Path("backups"), Path("latest")}).code, 0);
  EXPECT_EQ(Served(Path("latest")), Contents(*client_));

  // Keeping none would delete the newest: refused before any backup.
  r = Run({"backup", Path("backups"), "--keep", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, ::testing::StartsWith(
                         "--keep: 0 would delete the newest backup: keep at "
                         "least 1\n"));
  r = Run({"restore", "--list", Path("backups")});
  EXPECT_THAT(r.out, MatchesRegex("  ID .*\n   5  .*\n   6  .*\n"));
}

TEST_F(StoreCommandsTest, VersionsListsEveryVariable) {
  CliResult r = Run({"checkpoint", Path("ckpt"), "--versions"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ContainsRegex("\n VERSION  NAME\n +2  global_step\n"));
  EXPECT_THAT(r.out, ContainsRegex("\n +[0-9]+  model/emb/part_1\n"));
}

}  // namespace
}  // namespace varscope::cli::testing
