// Unit tests of the table's pieces: DirtySet, WorkingCopy, AppliedUpdates,
// the slot names of the optimizers, and the store's error mapping.
#include <cmath>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/status.h"
#include "server/storage/storage.h"
#include "server/table/applied_updates.h"
#include "server/table/dirty_set.h"
#include "server/table/optimizers.h"
#include "server/table/working_copy.h"

namespace varscope::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::varscope::testing::StatusIs;

TEST(DirtySet, RowsUntilTheWholeChanged) {
  DirtySet dirty;
  dirty.AddRow("a", 3);
  dirty.AddRow("a", 1);
  dirty.AddMeta("b");
  EXPECT_THAT(dirty.variables.at("a").rows, UnorderedElementsAre(1, 3));
  EXPECT_FALSE(dirty.variables.at("a").whole);
  EXPECT_THAT(dirty.variables.at("b").rows, IsEmpty());
  dirty.AddWhole("a");
  dirty.AddRow("a", 7);  // already in the whole
  EXPECT_TRUE(dirty.variables.at("a").whole);
  EXPECT_THAT(dirty.variables.at("a").rows, IsEmpty());
  EXPECT_FALSE(dirty.variables.at("a").reset);
  dirty.AddReset("b");
  EXPECT_TRUE(dirty.variables.at("b").reset);
  EXPECT_TRUE(dirty.variables.at("b").whole);
}

TEST(DirtySet, MergeKeepsTheNewerRecordAndTheWiderChange) {
  DirtySet older;
  older.AddRow("a", 1);
  older.AddWhole("b");
  older.AddApplied("c1", 5, "first");
  DirtySet newer;
  newer.AddRow("a", 2);
  newer.AddRow("b", 4);
  newer.AddReset("n");
  newer.AddApplied("c1", 5, std::nullopt);
  newer.AddApplied("c1", 6, "second");
  older.Merge(std::move(newer));
  EXPECT_THAT(older.variables.at("a").rows, UnorderedElementsAre(1, 2));
  EXPECT_TRUE(older.variables.at("b").whole);
  EXPECT_THAT(older.variables.at("b").rows, IsEmpty());
  EXPECT_TRUE(older.variables.at("n").reset);
  const auto& records = older.clients.at("c1").records;
  EXPECT_EQ(records.at(5), std::nullopt);
  EXPECT_EQ(records.at(6), "second");
}

TEST(DirtySet, MarkFailedRewritesVariablesAndUndoesAddedRecords) {
  DirtySet dirty;
  dirty.AddRow("a", 1);
  dirty.AddApplied("c1", 7, "added");
  dirty.AddApplied("c1", 2, std::nullopt);  // a deletion: left alone
  dirty.MarkFailed();
  const DirtySet::Variable& a = dirty.variables.at("a");
  EXPECT_TRUE(a.reset);
  EXPECT_TRUE(a.whole);
  EXPECT_THAT(a.rows, IsEmpty());
  const auto& records = dirty.clients.at("c1").records;
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records.at(7), std::nullopt);
  EXPECT_FALSE(dirty.empty());
  EXPECT_TRUE(DirtySet().empty());
}

// A variable of 4 rows of 2 bytes.
std::shared_ptr<const std::string> Base() {
  return std::make_shared<const std::string>("aabbccdd");
}

TEST(WorkingCopy, RowWritesCopyOnlyTheirRowAndLeaveTheBase) {
  const auto base = Base();
  WorkingCopy copy(base, /*row_bytes=*/2);
  EXPECT_EQ(copy.num_rows(), 4);
  EXPECT_FALSE(copy.changed());
  copy.MutableRow(3)[0] = 'X';
  EXPECT_TRUE(copy.changed());
  EXPECT_EQ(std::string(copy.Row(3), 2), "Xd");
  EXPECT_EQ(std::string(copy.Row(0), 2), "aa");
  EXPECT_EQ(copy.CopyContents(), "aabbccXd");
  EXPECT_EQ(*base, "aabbccdd");

  DirtySet dirty;
  copy.MarkChanged("v", dirty);
  EXPECT_FALSE(dirty.variables.at("v").whole);
  EXPECT_THAT(dirty.variables.at("v").rows, ElementsAre(3));
  EXPECT_EQ(copy.changed_row_bytes(), 8 + 2);
}

TEST(WorkingCopy, CopiedRowsAreWrittenLikeRowsCopiedOneByOne) {
  const auto base = Base();
  WorkingCopy copy(base, 2);
  copy.MutableRow(2)[1] = 'Q';
  const std::vector<int64_t> rows = {3, 0, 3,
                                     2};  // repeats, one already copied
  copy.CopyRows(rows);
  EXPECT_EQ(copy.CopyContents(), "aabbcQdd");  // copying alone changes nothing
  copy.MutableRow(3)[0] = 'X';
  copy.MutableRow(0)[0] = 'Y';
  EXPECT_EQ(copy.CopyContents(), "YabbcQXd");
  EXPECT_EQ(*base, "aabbccdd");
  EXPECT_EQ(copy.changed_row_bytes(), 3 * (8 + 2));  // rows 0, 2, 3 once each
  DirtySet dirty;
  copy.MarkChanged("v", dirty);
  EXPECT_THAT(dirty.variables.at("v").rows, UnorderedElementsAre(0, 2, 3));
}

TEST(WorkingCopy, WholeWritesMarkTheWhole) {
  WorkingCopy copy(Base(), 2);
  copy.MutableRow(0)[1] = 'Y';
  copy.MutableWhole()[7] = 'Z';  // keeps the row written before
  EXPECT_EQ(copy.CopyContents(), "aYbbccdZ");
  copy.SetWhole("12345678");
  EXPECT_EQ(std::string(copy.Whole(), 8), "12345678");
  DirtySet dirty;
  copy.MarkChanged("v", dirty);
  EXPECT_TRUE(dirty.variables.at("v").whole);
}

TEST(WorkingCopy, PublishReplacesASharedBufferAndWritesAnUnsharedOne) {
  auto published = std::make_shared<std::string>("aabbccdd");
  std::shared_ptr<const std::string> reader = published;  // a reader holds it
  WorkingCopy copy(published, 2);
  copy.MutableRow(1)[0] = 'B';
  copy.Publish(published);
  EXPECT_EQ(*published, "aaBbccdd");
  EXPECT_EQ(*reader, "aabbccdd");  // never changes while held

  reader.reset();
  const std::string* buffer = published.get();
  WorkingCopy again(published, 2);
  again.MutableRow(2)[0] = 'C';
  again.Publish(published);
  EXPECT_EQ(published.get(), buffer);  // in place: nobody else held it
  EXPECT_EQ(*published, "aaBbCcdd");
}

TEST(WorkingCopy, PersistsARowRecordOrTheWhole) {
  v1::StoredVariable meta;
  meta.mutable_info()->set_name("v");
  meta.set_chunk_bytes(4);
  WorkingCopy copy(Base(), 2);
  copy.MutableRow(2)[0] = 'Q';
  StorageBatch rows;
  copy.Persist(meta, /*has_row_records=*/false, rows);
  EXPECT_FALSE(rows.empty());
  copy.MutableWhole();
  EXPECT_TRUE(copy.whole_changed());
  StorageBatch whole;
  copy.Persist(meta, /*has_row_records=*/true, whole);
  EXPECT_FALSE(whole.empty());
}

TEST(RecordRows, RecordsStayBelowTheVariablesSize) {
  EXPECT_TRUE(RecordRows(1000, 0, 100));
  EXPECT_TRUE(RecordRows(1000, 900, 100));
  EXPECT_FALSE(RecordRows(1000, 901, 100));  // consolidate
  EXPECT_FALSE(RecordRows(1000, 0, 500));    // half of it: write it whole
}

v1::UpdateId Id(const std::string& client, int64_t sequence) {
  v1::UpdateId id;
  id.set_client_id(client);
  id.set_sequence(sequence);
  return id;
}

TEST(AppliedUpdates, ARepeatGetsTheFirstResultMarkedDuplicate) {
  AppliedUpdates applied;
  VS_ASSERT_OK_AND_ASSIGN(auto first, applied.Begin(Id("c", 1)));
  EXPECT_EQ(first, std::nullopt);
  v1::BatchUpdateResponse result;
  result.add_versions(7);
  applied.End(Id("c", 1), &result);
  VS_ASSERT_OK_AND_ASSIGN(auto repeat, applied.Begin(Id("c", 1)));
  ASSERT_TRUE(repeat.has_value());
  EXPECT_THAT(repeat->versions(), ElementsAre(7));
  EXPECT_TRUE(repeat->duplicate());
}

TEST(AppliedUpdates, AFailedUpdateMayBeRetried) {
  AppliedUpdates applied;
  VS_ASSERT_OK(applied.Begin(Id("c", 1)));
  applied.End(Id("c", 1), nullptr);
  VS_ASSERT_OK_AND_ASSIGN(auto retry, applied.Begin(Id("c", 1)));
  EXPECT_EQ(retry, std::nullopt);
  applied.End(Id("c", 1), nullptr);
}

TEST(AppliedUpdates, RecordsForgetWhatFallsOutOfTheWindow) {
  AppliedUpdates applied(/*window=*/2);
  v1::BatchUpdateResponse result;
  for (int64_t seq = 1; seq <= 3; ++seq) {
    VS_ASSERT_OK(applied.Begin(Id("c", seq)));
    const AppliedUpdates::Record record =
        applied.ToRecord(Id("c", seq), result);
    if (seq < 3) {
      EXPECT_THAT(record.forget, IsEmpty());
    } else {
      EXPECT_THAT(record.forget, ElementsAre(1));
    }
    applied.End(Id("c", seq), &result);
  }
  EXPECT_THAT(applied.Begin(Id("c", 1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(AppliedUpdates, RejectsBadIds) {
  AppliedUpdates applied;
  EXPECT_THAT(applied.Begin(Id("", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "An update's client_id must be 1 to 128 bytes "
                       "without NUL"));
  EXPECT_THAT(applied.Begin(Id("c", 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "An update's sequence must be positive, not 0"));
}

// The slot names common/names.h lists are the ones the optimizers make
// under their default names, plus Adam's beta powers.
TEST(SlotNames, AreTheOptimizersDefaultSlots) {
  std::vector<v1::Optimizer> specs(6);
  specs[0].mutable_gradient_descent();
  specs[1].mutable_momentum();
  specs[2].mutable_adagrad();
  specs[3].mutable_adam()->mutable_beta1_power()->set_value(0.9);
  specs[3].mutable_adam()->mutable_beta2_power()->set_value(0.999);
  specs[4].mutable_rms_prop()->set_centered(true);  // its most slots
  specs[5].mutable_ftrl();
  std::set<std::string> made;
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].set_learning_rate(0.1);
    VS_ASSERT_OK_AND_ASSIGN(OptimizerStep step,
                            OptimizerStep::Resolve(specs[i]));
    for (const SlotSpec& slot : step.slots()) {
      EXPECT_TRUE(IsSlotName(slot.suffix)) << slot.suffix;
      EXPECT_TRUE(absl::StartsWith(slot.suffix, kOptimizerNames[i]))
          << slot.suffix;
      made.insert(slot.suffix);
    }
  }
  made.insert({"Adam_beta1_power", "Adam_beta2_power"});
  EXPECT_EQ(made, std::set<std::string>(std::begin(kSlotNames),
                                        std::end(kSlotNames)));
}

// The element loops (vectorized where the compiler can) give, bit for bit,
// what TensorFlow's rules give element by element in float64 rounded to
// float32, on a length and offsets that leave a vector remainder and
// misaligned rows.
TEST(OptimizerStep, Float32StepsEqualTheElementwiseRuleExactly) {
  constexpr int64_t kN = 67;
  std::vector<float> w0(kN + 1), g(kN + 1), s0(kN + 1), s1(kN + 1);
  for (int64_t i = 0; i <= kN; ++i) {
    w0[i] = 0.5f - 0.013f * static_cast<float>(i);
    g[i] =
        (i % 5 == 0 ? -1.0f : 0.7f) * (0.01f + 0.003f * static_cast<float>(i));
    s0[i] = 0.1f + 0.002f * static_cast<float>(i);
    s1[i] = 0.001f * static_cast<float>(i);
  }
  std::vector<v1::Optimizer> specs(4);
  specs[0].mutable_gradient_descent();
  specs[1].mutable_momentum()->set_momentum(0.9);
  specs[1].mutable_momentum()->set_use_nesterov(true);
  specs[2].mutable_adagrad();
  specs[3].mutable_adam()->mutable_beta1_power()->set_value(0.81);
  specs[3].mutable_adam()->mutable_beta2_power()->set_value(0.998);
  for (v1::Optimizer& spec : specs) {
    spec.set_learning_rate(0.05);
    VS_ASSERT_OK_AND_ASSIGN(OptimizerStep step, OptimizerStep::Resolve(spec));
    VS_ASSERT_OK(step.ReadInputs(
        [](const std::string& name) { return absl::NotFoundError(name); }));
    // From element 1: not aligned to the vectors.
    std::vector<float> w = w0, a = s0, b = s1;
    step.ApplyElements(
        v1::DT_FLOAT, kN, reinterpret_cast<char*>(&w[1]),
        {reinterpret_cast<char*>(&a[1]), reinterpret_cast<char*>(&b[1])},
        reinterpret_cast<const char*>(&g[1]));
    const double lr = 0.05;
    for (int64_t i = 1; i <= kN; ++i) {
      double want_w = w0[i], want_a = s0[i], want_b = s1[i];
      const double gi = g[i];
      switch (spec.kind_case()) {
        case v1::Optimizer::kGradientDescent:
          want_w -= lr * gi;
          break;
        case v1::Optimizer::kMomentum:
          want_a = want_a * 0.9 + gi;
          want_w -= gi * lr + want_a * 0.9 * lr;
          break;
        case v1::Optimizer::kAdagrad:
          want_a += gi * gi;
          want_w -= lr * gi / std::sqrt(want_a);
          break;
        default:  // Adam
          want_a = want_a * 0.9 + (1 - 0.9) * gi;
          want_b = want_b * 0.999 + (1 - 0.999) * gi * gi;
          want_w -= lr * std::sqrt(1 - 0.998) / (1 - 0.81) * want_a /
                    (std::sqrt(want_b) + 1e-8);
          break;
      }
      ASSERT_EQ(w[i], static_cast<float>(want_w)) << spec.DebugString() << i;
      if (!step.slots().empty()) {
        ASSERT_EQ(a[i], static_cast<float>(want_a)) << spec.DebugString() << i;
      }
      if (step.slots().size() > 1) {
        ASSERT_EQ(b[i], static_cast<float>(want_b)) << spec.DebugString() << i;
      }
    }
    EXPECT_EQ(w[0], w0[0]);  // outside the n elements: untouched
    EXPECT_EQ(a[0], s0[0]);
  }
}

TEST(FromRocksStatus, MapsEachCodeAndStartsWithTheContext) {
  EXPECT_TRUE(FromRocksStatus(rocksdb::Status::OK(), "ctx").ok());
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::NotFound("k"), "Reading"),
              StatusIs(absl::StatusCode::kNotFound, "Reading: NotFound: k"));
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::Corruption("bad"), "c"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::InvalidArgument("x"), "c"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::NotSupported("x"), "c"),
              StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::IOError("x"), "c"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::NoSpace("x"), "c"),
              StatusIs(absl::StatusCode::kResourceExhausted));
  for (const rocksdb::Status& busy :
       {rocksdb::Status::Busy("x"), rocksdb::Status::TryAgain("x"),
        rocksdb::Status::TimedOut("x"), rocksdb::Status::Incomplete("x"),
        rocksdb::Status::ShutdownInProgress("x")}) {
    EXPECT_THAT(FromRocksStatus(busy, "c"),
                StatusIs(absl::StatusCode::kUnavailable))
        << busy.ToString();
  }
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::Aborted("x"), "c"),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(FromRocksStatus(rocksdb::Status::MergeInProgress("x"), "c"),
              StatusIs(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace varscope::server
