// A cluster paused at one consistent cut (AdminService.Pause and
// WithConsistentCut): bad requests, steps half applied when the pause
// begins, and abandoned ones.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/admin_client.h"
#include "client/variable_scope.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::varscope::testing::IsOk;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;
using ::varscope::testing::TestShardOptions;

// Names on shards 0 and 1 of 3 (by ShardOf), and one more on shard 0.
std::string NameOn(int shard, const std::string& prefix = "v") {
  return testing::NameOnShard(shard, 3, prefix);
}

Tensor One() {
  const int64_t one = 1;
  return Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&one, 1});
}

v1::PauseRequest PauseOf(const std::string& id, absl::Duration lease) {
  v1::PauseRequest request;
  request.set_pause_id(id);
  request.set_reason("a test");
  request.set_lease_micros(absl::ToInt64Microseconds(lease));
  return request;
}

class ClusterPauseTest : public ::testing::Test {
 protected:
  ClusterPauseTest() {
    std::vector<std::string> addresses;
    for (int i = 0; i < 3; ++i) {
      shards_.push_back(std::make_unique<TestServer>(TestShardOptions(i, 3)));
      admins_.push_back(
          AdminClient::Connect(shards_[i]->address(), absl::Minutes(1)));
      admin_ptrs_.push_back(admins_.back().get());
      addresses.push_back(shards_[i]->address());
    }
    client_ = Client::Connect(absl::StrJoin(addresses, ","),
                              testing::TestClientOptions());
    a_ = NameOn(0);
    b_ = NameOn(1);
    for (const std::string& name : {a_, b_}) {
      VariableScope scope;
      GetVariableOptions options;
      options.shape = std::vector<int64_t>{};
      options.dtype = v1::DT_INT64;
      EXPECT_THAT(GetVariable(client_, scope, name, options).status(), IsOk());
    }
  }

  // One step adding 1 to a and b: a batch on shard 0 and one on shard 1.
  v1::BatchUpdateRequest Step() const {
    const int64_t one = 1;
    v1::BatchUpdateRequest step;
    for (const std::string& name : {a_, b_}) {
      *step.add_updates() = testing::WholeUpdate(
          name, Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&one, 1}),
          /*add=*/true);
    }
    return step;
  }

  int64_t ValueOn(int shard, const std::string& name) {
    absl::StatusOr<ReadResult> read = shards_[shard]->NewClient()->Read(name);
    EXPECT_THAT(read.status(), IsOk());
    return read.ok() ? read->value.flat<int64_t>()[0] : -1;
  }

  std::vector<std::unique_ptr<TestServer>> shards_;
  std::vector<std::unique_ptr<AdminClient>> admins_;
  std::vector<AdminClient*> admin_ptrs_;
  std::shared_ptr<Client> client_;
  std::string a_, b_;
};

TEST_F(ClusterPauseTest, BadPausesAreRefusedAndChangeNothing) {
  AdminClient& admin = *admins_[1];
  EXPECT_THAT(admin.Pause(PauseOf("p", absl::ZeroDuration())).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A pause's lease must be 1ms to 1m, got 0"));
  EXPECT_THAT(admin.Pause(PauseOf("p", absl::Seconds(61))).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A pause's lease must be 1ms to 1m, got 1m1s"));
  EXPECT_THAT(admin.Pause(PauseOf("", absl::Seconds(1))).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A pause_id must be 1 to 128 bytes, got 0"));
  // None of them paused anything.
  EXPECT_THAT(client_->AssignAdd(b_, One()).status(), IsOk());

  ASSERT_THAT(admin.Pause(PauseOf("first", absl::Minutes(1))).status(), IsOk());
  absl::StatusOr<v1::PauseResponse> other =
      admin.Pause(PauseOf("second", absl::Seconds(1)));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.status().message()),
              ::testing::MatchesRegex(
                  "Shard 1 of 3 is paused for a test \\(pause first, .* left "
                  "of its lease\\): pause second must wait for it to end"));
  v1::ResumeRequest resume;
  resume.set_pause_id("second");
  EXPECT_THAT(admin.Resume(resume).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(": pause second cannot end it")));

  // Changes are refused (a client without retries sees it), reads go on.
  ClientOptions once = testing::TestClientOptions();
  once.max_attempts = 1;
  const std::shared_ptr<Client> impatient = shards_[1]->NewClient(once);
  const absl::Status refused = impatient->AssignAdd(b_, One()).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.message()),
              ::testing::MatchesRegex(
                  ".*: Shard 1 of 3 is paused for a test \\(pause first, .* "
                  "left of its lease\\); retry"));
  EXPECT_EQ(ValueOn(1, b_), 1);
  // The pause's own changes pass (ClientOptions::pause_id).
  ClientOptions holder = once;
  holder.pause_id = "first";
  EXPECT_THAT(shards_[1]->NewClient(holder)->AssignAdd(b_, One()), IsOk());
  EXPECT_EQ(ValueOn(1, b_), 2);

  resume.set_pause_id("first");
  absl::StatusOr<v1::ResumeResponse> resumed = admin.Resume(resume);
  ASSERT_THAT(resumed.status(), IsOk());
  EXPECT_TRUE(resumed->was_held());
  // An ended pause cannot be taken again: its cut is gone.
  EXPECT_THAT(admin.Pause(PauseOf("first", absl::Seconds(1))).status(),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("Pause first ended on shard 1 of 3")));
  EXPECT_THAT(impatient->AssignAdd(b_, One()).status(), IsOk());
  resumed = admin.Resume(resume);
  ASSERT_THAT(resumed.status(), IsOk());
  EXPECT_FALSE(resumed->was_held());
}

TEST_F(ClusterPauseTest, AHalfAppliedStepIsCompletedInsideTheCut) {
  // Shard 0, the step's keeper, pauses first (under the cut's id): the step
  // applies on shard 1, its batch for shard 0 is refused and retried, and no
  // shard holds its intent (see cluster_recover_test.cc for steps whose
  // keeper does).
  CutOptions options;
  options.pause_id = "cut-under-test";
  options.complete_timeout = absl::Minutes(1);
  ASSERT_THAT(
      admins_[0]->Pause(PauseOf(options.pause_id, absl::Minutes(1))).status(),
      IsOk());
  absl::Status stepped;
  std::thread worker([&] { stepped = client_->BatchUpdate(Step()).status(); });
  for (const absl::Time end = absl::Now() + absl::Minutes(1);
       ValueOn(1, b_) == 0 && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(ValueOn(1, b_), 1);
  EXPECT_EQ(ValueOn(0, a_), 0);

  int completed = -1;
  ASSERT_THAT(WithConsistentCut(admin_ptrs_, options,
                                [&](const Cut& cut) {
                                  EXPECT_EQ(cut.recovered, 0);
                                  completed = cut.completed;
                                  EXPECT_TRUE(cut.abandoned.empty());
                                  EXPECT_EQ(ValueOn(0, a_), 1);
                                  EXPECT_EQ(ValueOn(1, b_), 1);
                                  return absl::OkStatus();
                                }),
              IsOk());
  EXPECT_EQ(completed, 1);
  worker.join();
  EXPECT_THAT(stepped, IsOk());
  // The next cut finds the step whole.
  options.pause_id.clear();
  ASSERT_THAT(WithConsistentCut(admin_ptrs_, options,
                                [&](const Cut& cut) {
                                  completed = cut.completed;
                                  return absl::OkStatus();
                                }),
              IsOk());
  EXPECT_EQ(completed, 0);
}

TEST_F(ClusterPauseTest, AStepWhoseWorkerDiedFailsTheCutThenIsKeptAsItIs) {
  // A worker sent the step's batch to shard 0 and died before shard 1.
  v1::BatchUpdateRequest half = Step();
  half.mutable_updates()->DeleteSubrange(1, 1);
  half.mutable_id()->set_client_id("dead-worker");
  half.mutable_id()->set_sequence(17);
  half.add_span_shards(0);
  half.add_span_shards(1);
  const auto stub = v1::VariableService::NewStub(grpc::CreateChannel(
      shards_[0]->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::BatchUpdateResponse applied;
  ASSERT_TRUE(stub->BatchUpdate(&context, half, &applied).ok());

  CutOptions options;
  options.complete_timeout = absl::Milliseconds(100);
  bool acted = false;
  const auto act = [&](const Cut&) {
    acted = true;
    return absl::OkStatus();
  };
  EXPECT_THAT(
      WithConsistentCut(admin_ptrs_, options, act),
      StatusIs(absl::StatusCode::kAborted,
               "Step 17 of client dead-worker was applied on shards 0 but not "
               "on shard 1 within 100ms of the pause: its worker may have "
               "died, or be retrying slowly. Try again: a step applied more "
               "than 1m10s ago is taken as abandoned and kept as it is"));
  EXPECT_FALSE(acted);
  // Every shard resumed.
  EXPECT_THAT(client_->AssignAdd(b_, One()).status(), IsOk());

  options.abandoned_after = absl::ZeroDuration();
  std::vector<std::string> abandoned;
  ASSERT_THAT(WithConsistentCut(admin_ptrs_, options,
                                [&](const Cut& cut) {
                                  abandoned = cut.abandoned;
                                  return absl::OkStatus();
                                }),
              IsOk());
  EXPECT_THAT(abandoned, ElementsAre("step 17 of client dead-worker (applied "
                                     "on shards 0; not on 1)"));
}

TEST_F(ClusterPauseTest, ACutWhosePauseEndedDuringTheActionFails) {
  const absl::Status status =
      WithConsistentCut(admin_ptrs_, {}, [&](const Cut& cut) {
        // As if its lease ran out: changes go on during the action.
        v1::ResumeRequest resume;
        resume.set_pause_id(cut.pause_id);
        EXPECT_THAT(admins_[2]->Resume(resume).status(), IsOk());
        return absl::OkStatus();
      });
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kAborted,
                       "Shard 2 of 3: the pause's lease of 10s ran out before "
                       "the action ended, so changes may have gone on during "
                       "it; give it a longer lease"));
}

TEST_F(ClusterPauseTest, ACheckpointUnderAnEndedPauseIsRefused) {
  v1::CheckpointRequest request;
  request.set_directory(testing::TempDir().path() + "/never");
  request.set_pause_id("gone");
  EXPECT_THAT(admins_[2]->Checkpoint(request).status(),
              StatusIs(absl::StatusCode::kAborted,
                       "Pause gone no longer holds on shard 2 of 3 (its lease "
                       "ran out, or it was resumed): the copy would not be "
                       "of its cut"));
}

}  // namespace
}  // namespace varscope
