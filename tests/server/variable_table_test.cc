// The variable table on its own, over a real store in a temporary directory:
// what tests through a server cannot hold still.
#include "server/table/variable_table.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope::server {
namespace {

using ::varscope::testing::BatchOf;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::WholeUpdate;

v1::GetVariableRequest Create(const std::string& name) {
  return CreateRequest(name, v1::DT_FLOAT, {2});
}

v1::BatchUpdateRequest Assign(const std::string& name) {
  return BatchOf(WholeUpdate(name, Tensor(v1::DT_FLOAT, {2}), /*add=*/false));
}

class VariableTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VS_ASSERT_OK_AND_ASSIGN(storage_, Storage::Open({}, dir_.path()));
    VS_ASSERT_OK_AND_ASSIGN(table_, VariableTable::Load({}, storage_.get()));
  }

  TempDir dir_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<VariableTable> table_;
};

// Issue 11: the near matches of a missing name were searched under the
// table's lock, so 60 concurrent lookups of missing names stalled every
// other call for seconds. While one search is held paused, every other kind
// of call completes.
TEST_F(VariableTableTest, NearMatchSearchBlocksNoOtherCall) {
  VS_ASSERT_OK(table_->GetVariable(Create("model/dense/kernel")).status());
  VS_ASSERT_OK(table_->GetVariable(Create("other")).status());
  absl::Notification searching, resume;
  table_->SetNearMatchesHookForTest([&] {
    searching.Notify();
    resume.WaitForNotification();
  });
  absl::StatusOr<ReadResult> missing;
  std::thread lookup([&] { missing = table_->Read("model/dense/kernal"); });
  searching.WaitForNotification();

  VS_EXPECT_OK(table_->GetVariable(Create("model/dense/bias")).status());
  VS_EXPECT_OK(table_->Read("other").status());
  VS_EXPECT_OK(table_->Stat("model/dense/kernel").status());
  VS_EXPECT_OK(table_->BatchUpdate(Assign("other")).status());
  VS_EXPECT_OK(table_->List({}).status());
  VS_EXPECT_OK(table_->Rename("model/dense/bias", "model/dense/b").status());
  VS_EXPECT_OK(table_->Delete("model/dense/b", /*recursive=*/false).status());
  resume.Notify();
  lookup.join();
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kNotFound,
                                "Variable model/dense/kernal does not exist. "
                                "Similar names: model/dense/kernel"));
}

// The names searched follow creations, renames, deletions and reloads.
TEST_F(VariableTableTest, NearMatchesFollowRenamesDeletionsAndReloads) {
  VS_ASSERT_OK(table_->GetVariable(Create("a/weights")).status());
  VS_ASSERT_OK(table_->Rename("a", "b").status());
  table_.reset();
  VS_ASSERT_OK_AND_ASSIGN(table_, VariableTable::Load({}, storage_.get()));
  EXPECT_THAT(table_->Stat("c/weights"),
              StatusIs(absl::StatusCode::kNotFound,
                       "Variable c/weights does not exist. Variables named "
                       "'weights' exist at: b/weights"));
  VS_ASSERT_OK(table_->Delete("b", /*recursive=*/true).status());
  EXPECT_THAT(table_->Stat("c/weights"),
              StatusIs(absl::StatusCode::kNotFound,
                       "Variable c/weights does not exist."));
}

// Issue 12: a change runs in its gRPC reaction unless it may wait for
// something slow; the table says when that is.
TEST(ChangesMayWait, OnlyInSyncModeOrDuringAPause) {
  for (const std::string mode : {"wal", "interval=1h", "sync"}) {
    SCOPED_TRACE(mode);
    TempDir dir;
    VS_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Storage> storage,
                            Storage::Open({}, dir.path()));
    TableOptions options;
    VS_ASSERT_OK_AND_ASSIGN(options.durability, ParseDurability(mode));
    VS_ASSERT_OK_AND_ASSIGN(std::unique_ptr<VariableTable> table,
                            VariableTable::Load(options, storage.get()));
    const bool sync = mode == "sync";
    EXPECT_EQ(table->ChangesMayWait(), sync);
    bool during_pause = false;
    VS_ASSERT_OK(table
                     ->CopyStore([&]() -> absl::StatusOr<uint64_t> {
                       during_pause = table->ChangesMayWait();
                       return 0;
                     })
                     .status());
    EXPECT_TRUE(during_pause);
    EXPECT_EQ(table->ChangesMayWait(), sync);
  }
}

}  // namespace
}  // namespace varscope::server
