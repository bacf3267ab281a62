// Checkpoints, backups and restores of a live server through AdminService,
// while writers run.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/admin_client.h"
#include "client/client.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/storage.h"
#include "server/table/durability.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Lt;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;
using ::varscope::testing::WholeUpdate;

constexpr int64_t kSize = 64;

Tensor Fill(int64_t value, std::vector<int64_t> dims = {kSize}) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return Tensor::FromVector<int64_t>(v1::DT_INT64, std::move(dims),
                                     std::vector<int64_t>(n, value));
}

v1::GetVariableRequest Create(const std::string& name,
                              std::vector<int64_t> dims = {kSize}) {
  return CreateRequest(name, v1::DT_INT64, std::move(dims),
                       v1::Initializer::ZEROS);
}

// The single value every element of `name` holds, and its version; fails
// the test if the elements differ.
std::pair<int64_t, int64_t> Uniform(Client& client, const std::string& name) {
  absl::StatusOr<ReadResult> read = client.Read(name);
  EXPECT_TRUE(read.ok()) << read.status();
  if (!read.ok()) return {0, 0};
  auto flat = read->value.flat<int64_t>();
  for (int64_t v : flat) EXPECT_EQ(v, flat[0]) << name << " is torn";
  return {flat[0], read->version};
}

// Two writers: one moves one unit from inv/b to inv/a per batch (a == -b
// and both share a version), one assigns seq/x = n with every element n
// (version n + 1).
class Writers {
 public:
  explicit Writers(std::shared_ptr<Client> client) : client_(client) {
    threads_.emplace_back([this] {
      while (!stop_.load()) {
        v1::BatchUpdateRequest request;
        *request.add_updates() = WholeUpdate("inv/a", Fill(1), true);
        *request.add_updates() = WholeUpdate("inv/b", Fill(-1), true);
        absl::StatusOr<v1::BatchUpdateResponse> r =
            client_->BatchUpdate(request);
        ASSERT_TRUE(r.ok()) << r.status();
        absl::MutexLock l(&mu_);
        batch_version_ = r->versions(0);
      }
    });
    threads_.emplace_back([this] {
      for (int64_t n = 1; !stop_.load(); ++n) {
        v1::BatchUpdateRequest request;
        *request.add_updates() = WholeUpdate("seq/x", Fill(n, {8, 8}), false);
        absl::StatusOr<v1::BatchUpdateResponse> r =
            client_->BatchUpdate(request);
        ASSERT_TRUE(r.ok()) << r.status();
        absl::MutexLock l(&mu_);
        assign_version_ = r->versions(0);
      }
    });
  }
  ~Writers() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  // The last acknowledged versions of inv/a and seq/x.
  std::pair<int64_t, int64_t> Acked() {
    absl::MutexLock l(&mu_);
    return {batch_version_, assign_version_};
  }

  // Waits until both writers have acknowledged another write (for up to
  // two minutes); false if they did not.
  bool AwaitProgress() {
    absl::MutexLock l(&mu_);
    const int64_t batch = batch_version_, assign = assign_version_;
    const auto progressed = [&] {
      mu_.AssertHeld();
      return batch_version_ > batch && assign_version_ > assign;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&progressed), absl::Minutes(2));
  }

 private:
  std::shared_ptr<Client> client_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  int64_t batch_version_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t assign_version_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::thread> threads_;
};

class BackupTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    server::ServerOptions options;
    options.table.durability = *server::ParseDurability(GetParam());
    server_ = std::make_unique<TestServer>(options);
    std::shared_ptr<Client> client = server_->NewClient();
    for (const char* name : {"inv/a", "inv/b"}) {
      ASSERT_TRUE(client->GetVariable(Create(name)).ok());
    }
    ASSERT_TRUE(client->GetVariable(Create("seq/x", {8, 8})).ok());
    // 1 MiB that never changes: every backup shares its files.
    ASSERT_TRUE(client->GetVariable(Create("static/w", {1024, 128})).ok());
    ASSERT_TRUE(server_->Restart().ok());  // into table and blob files
    admin_ = AdminClient::Connect(server_->address(), absl::Minutes(5));
  }

  std::string Path(const std::string& name) {
    return absl::StrCat(dir_.path(), "/", name);
  }

  // Checks that the store in `data_dir` holds exactly `contents`, whose
  // versions lie between `before` and `after` (the writers' last
  // acknowledged versions around the copy), and is internally consistent.
  void ExpectStore(const std::string& data_dir,
                   const v1::StoreContents& contents,
                   std::pair<int64_t, int64_t> before,
                   std::pair<int64_t, int64_t> after) {
    SCOPED_TRACE(data_dir);
    EXPECT_EQ(contents.variables(), 4);
    const int64_t a = contents.versions().at("inv/a");
    const int64_t x = contents.versions().at("seq/x");
    EXPECT_EQ(contents.versions().at("inv/b"), a);  // one batch, one version
    // At most one update per writer was in flight.
    EXPECT_GE(a, before.first);
    EXPECT_LE(a, after.first + 1);
    EXPECT_GE(x, before.second);
    EXPECT_LE(x, after.second + 1);

    server::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = data_dir;
    absl::StatusOr<std::unique_ptr<server::Server>> copy =
        server::Server::Start(options);
    ASSERT_TRUE(copy.ok()) << copy.status();
    std::shared_ptr<Client> client =
        Client::Connect(absl::StrCat("127.0.0.1:", (*copy)->port()));
    const auto [a_value, a_version] = Uniform(*client, "inv/a");
    const auto [b_value, b_version] = Uniform(*client, "inv/b");
    const auto [x_value, x_version] = Uniform(*client, "seq/x");
    EXPECT_EQ(a_version, a);
    EXPECT_EQ(b_version, a);
    EXPECT_EQ(a_value, a - 1);
    EXPECT_EQ(b_value, -(a - 1));
    EXPECT_EQ(x_version, x);
    EXPECT_EQ(x_value, x - 1);
    EXPECT_EQ(Uniform(*client, "static/w").first, 0);
  }

  TempDir dir_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<AdminClient> admin_;
};

TEST_P(BackupTest, CopiesWhileWritersRunHoldOneMoment) {
  Writers writers(server_->NewClient());
  ASSERT_TRUE(writers.AwaitProgress()) << "writers stalled";

  v1::CheckpointRequest checkpoint;
  checkpoint.set_directory(Path("checkpoint"));
  checkpoint.set_return_versions(true);
  const auto before_checkpoint = writers.Acked();
  VS_ASSERT_OK_AND_ASSIGN(v1::CheckpointResponse checkpointed,
                          admin_->Checkpoint(checkpoint));
  const auto after_checkpoint = writers.Acked();

  std::vector<v1::BackupResponse> backups;
  std::vector<std::pair<int64_t, int64_t>> before, after;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(writers.AwaitProgress()) << "writers stalled";
    v1::BackupRequest backup;
    backup.set_directory(Path("backups"));
    backup.set_return_versions(true);
    before.push_back(writers.Acked());
    VS_ASSERT_OK_AND_ASSIGN(v1::BackupResponse backed_up,
                            admin_->Backup(backup));
    after.push_back(writers.Acked());
    backups.push_back(std::move(backed_up));
  }
  writers.Stop();
  EXPECT_GT(after.back().first, before_checkpoint.first) << "writers stalled";

  ExpectStore(Path("checkpoint"), checkpointed.contents(), before_checkpoint,
              after_checkpoint);
  // Incremental: the second backup shares the unchanged files.
  EXPECT_EQ(backups[0].backup_id(), 1u);
  EXPECT_EQ(backups[1].backup_id(), 2u);
  EXPECT_EQ(backups[0].added_bytes(), backups[0].size_bytes());
  EXPECT_THAT(backups[1].added_bytes(),
              Lt(backups[1].size_bytes() - (1 << 20)));
  for (int i = 0; i < 2; ++i) {
    const std::string restored = Path(absl::StrCat("restored-", i + 1));
    VS_ASSERT_OK_AND_ASSIGN(
        server::RestoredStore store,
        server::Storage::Restore(Path("backups"), i + 1, restored));
    EXPECT_EQ(store.backup_id, static_cast<uint32_t>(i + 1));
    EXPECT_EQ(store.contents.sequence, backups[i].contents().sequence());
    EXPECT_EQ(store.contents.versions,
              (std::map<std::string, int64_t>(
                  backups[i].contents().versions().begin(),
                  backups[i].contents().versions().end())));
    ExpectStore(restored, backups[i].contents(), before[i], after[i]);
  }
  VS_ASSERT_OK_AND_ASSIGN(std::vector<server::BackupSummary> listed,
                          server::Storage::ListBackups(Path("backups")));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1].added_bytes, backups[1].added_bytes());
}

INSTANTIATE_TEST_SUITE_P(Durability, BackupTest,
                         ::testing::Values("wal", "interval=50ms"),
                         [](const auto& info) {
                           return info.param == "wal" ? "Wal" : "Interval";
                         });

class CopyErrorsTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) {
    return absl::StrCat(dir_.path(), "/", name);
  }
  static server::ServerOptions Rooted(const std::string& root) {
    server::ServerOptions options;
    options.backup_root = root;
    return options;
  }
  TempDir dir_;
  TestServer server_{Rooted(dir_.path())};
  std::unique_ptr<AdminClient> admin_ =
      AdminClient::Connect(server_.address(), absl::Minutes(1));
};

TEST_F(CopyErrorsTest, DirectoriesAreConfinedToTheBackupRoot) {
  const std::string root = std::filesystem::canonical(dir_.path()).string();
  v1::CheckpointRequest checkpoint;
  v1::BackupRequest backup;
  // Relative paths are taken under the root.
  std::filesystem::create_directory(Path("rel"));
  checkpoint.set_directory("rel/ckpt");
  VS_ASSERT_OK(admin_->Checkpoint(checkpoint));
  EXPECT_TRUE(std::filesystem::is_directory(Path("rel/ckpt")));
  backup.set_directory("rel/backups");
  VS_ASSERT_OK(admin_->Backup(backup));
  EXPECT_TRUE(std::filesystem::is_directory(Path("rel/backups")));
  // '..' is refused, even when it would land back inside.
  for (const std::string& dotdot :
       {std::string("../x"), Path("rel/../y"), std::string("a/../../z")}) {
    checkpoint.set_directory(dotdot);
    EXPECT_THAT(admin_->Checkpoint(checkpoint),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("The directory '", dotdot,
                                      "' has a '..' component; name one under "
                                      "the backup root ",
                                      dir_.path())));
  }
  // Outside the root, directly or through a symlink.
  TempDir elsewhere;
  const std::string outside =
      std::filesystem::canonical(elsewhere.path()).string();
  std::filesystem::create_directory_symlink(elsewhere.path(), Path("link"));
  for (const auto& [requested, resolved] :
       std::vector<std::pair<std::string, std::string>>{
           {elsewhere.path() + "/c", outside + "/c"},
           {"link/c", outside + "/c"},
           {Path("link/c"), outside + "/c"},
           {"/", "/"},
           {dir_.path(), root}}) {
    backup.set_directory(requested);
    EXPECT_THAT(
        admin_->Backup(backup),
        StatusIs(absl::StatusCode::kPermissionDenied,
                 absl::StrCat("The directory '", requested, "' resolves to ",
                              resolved, ", not under the backup root ", root)));
  }
  EXPECT_TRUE(std::filesystem::is_empty(elsewhere.path()));
  // A file in place of a directory.
  std::ofstream(Path("file")) << "x";
  checkpoint.set_directory("file/ckpt");
  EXPECT_THAT(admin_->Checkpoint(checkpoint),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("The directory 'file/ckpt' cannot be "
                                    "written: ",
                                    root, "/file is a file, not a directory")));
  backup.set_directory("file");
  EXPECT_THAT(admin_->Backup(backup),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("The directory 'file' cannot be written: ",
                                    root, "/file is a file, not a directory")));
  backup.clear_directory();
  EXPECT_THAT(admin_->Backup(backup),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Name the directory to write, under the server's "
                       "backup root"));
  checkpoint.set_directory(Path("c"));
  VS_ASSERT_OK(admin_->Checkpoint(checkpoint));
}

TEST(BackupRoot, WithoutOneCheckpointsAndBackupsAreRefused) {
  TempDir data, target;
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.data_dir = data.path();
  VS_ASSERT_OK_AND_ASSIGN(auto server, server::Server::Start(options));
  auto admin = AdminClient::Connect(absl::StrCat("127.0.0.1:", server->port()),
                                    absl::Minutes(1));
  const std::string message =
      "This server writes no checkpoints or backups: start varscoped with "
      "--backup-root=DIR to allow them under DIR";
  v1::CheckpointRequest checkpoint;
  checkpoint.set_directory(target.path() + "/c");
  EXPECT_THAT(admin->Checkpoint(checkpoint),
              StatusIs(absl::StatusCode::kFailedPrecondition, message));
  v1::BackupRequest backup;
  backup.set_directory(target.path() + "/b");
  EXPECT_THAT(admin->Backup(backup),
              StatusIs(absl::StatusCode::kFailedPrecondition, message));
  EXPECT_TRUE(std::filesystem::is_empty(target.path()));
}

TEST_F(CopyErrorsTest, CheckpointsGoIntoNewDirectories) {
  v1::CheckpointRequest checkpoint;
  v1::BackupRequest backup;
  std::filesystem::create_directory(Path("d"));
  checkpoint.set_directory(Path("d"));
  EXPECT_THAT(
      admin_->Checkpoint(checkpoint),
      StatusIs(absl::StatusCode::kAlreadyExists,
               absl::StrCat("Cannot write a checkpoint into ", Path("d"),
                            ": it exists (a checkpoint goes into a "
                            "new directory)")));
  checkpoint.set_directory(Path("c"));
  VS_ASSERT_OK(admin_->Checkpoint(checkpoint));
  backup.set_directory(Path("c"));
  EXPECT_THAT(admin_->Backup(backup),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("holds a store or checkpoint, not backups")));
}

TEST_F(CopyErrorsTest, RestoreRefusesNonEmptyTargetsAndMissingBackups) {
  v1::BackupRequest backup;
  backup.set_directory(Path("b"));
  VS_ASSERT_OK(admin_->Backup(backup));

  std::filesystem::create_directory(Path("full"));
  std::ofstream(Path("full/file")) << "x";
  EXPECT_THAT(server::Storage::Restore(Path("b"), 0, Path("full")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("Refusing to restore into ", Path("full"),
                                    ": it exists and is not empty (restore "
                                    "into a new or empty directory)")));
  EXPECT_THAT(server::Storage::Restore(Path("b"), 7, Path("new")),
              StatusIs(absl::StatusCode::kNotFound,
                       absl::StrCat("Backup 7 is not in backup directory ",
                                    Path("b"), " (it holds backups 1 to 1)")));
  EXPECT_TRUE(std::filesystem::is_empty(Path("new")))
      << "a failed restore leaves nothing behind";
  EXPECT_THAT(server::Storage::Restore(Path("missing"), 0, Path("new")),
              StatusIs(absl::StatusCode::kNotFound,
                       absl::StrCat(Path("missing"), " does not exist")));
  EXPECT_THAT(server::Storage::ListBackups(Path("full")),
              StatusIs(absl::StatusCode::kNotFound,
                       absl::StrCat("Backup directory ", Path("full"),
                                    " holds no backup")));
  VS_ASSERT_OK_AND_ASSIGN(server::RestoredStore latest,
                          server::Storage::Restore(Path("b"), 0, Path("new")));
  EXPECT_EQ(latest.backup_id, 1u);
  EXPECT_EQ(latest.contents.variables, 0);
}

}  // namespace
}  // namespace varscope
