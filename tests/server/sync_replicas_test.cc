// End-to-end: synchronous replicas (SyncApply, WaitForStep).
#include <thread>

#include "absl/synchronization/notification.h"
#include "client/variable_scope.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/variable_service.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::varscope::testing::IsOk;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

Tensor Doubles(std::vector<int64_t> dims, std::vector<double> values) {
  return Tensor::FromVector<double>(v1::DT_DOUBLE, std::move(dims), values);
}

class SyncReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VariableScope scope;
    GetVariableOptions options;
    options.shape = std::vector<int64_t>{3, 2};
    options.dtype = v1::DT_DOUBLE;
    options.initializer = v1::Initializer();
    options.initializer->set_kind(v1::Initializer::ZEROS);
    ASSERT_THAT(GetVariable(client_, scope, "w", options).status(), IsOk());
    ASSERT_THAT(GetOrCreateGlobalStep(client_).status(), IsOk());
  }

  // Worker `worker`'s contribution at `step`: a dense SGD (learning rate 1)
  // gradient of w.
  static v1::SyncApplyRequest Dense(int64_t step, std::vector<double> grad,
                                    int replicas = 3) {
    v1::SyncApplyRequest request;
    request.set_accumulator("sync");
    request.set_step(step);
    request.set_replicas_to_aggregate(replicas);
    v1::Update* update = request.add_updates();
    update->set_name("w");
    v1::ApplyGradient* apply = update->mutable_apply_gradient();
    apply->mutable_optimizer()->set_learning_rate(1);
    apply->mutable_optimizer()->mutable_gradient_descent();
    TensorToProto(Doubles({3, 2}, std::move(grad)), apply->mutable_gradient());
    return request;
  }

  static v1::SyncApplyRequest Sparse(int64_t step, std::vector<int64_t> rows,
                                     std::vector<double> grad) {
    v1::SyncApplyRequest request = Dense(step, {0, 0, 0, 0, 0, 0}, 2);
    v1::ApplyGradient* apply =
        request.mutable_updates(0)->mutable_apply_gradient();
    const int64_t n = static_cast<int64_t>(rows.size());
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, rows),
                  apply->mutable_indices());
    TensorToProto(Doubles({n, 2}, std::move(grad)), apply->mutable_gradient());
    return request;
  }

  std::vector<double> W() {
    absl::StatusOr<ReadResult> read = client_->Read("w");
    EXPECT_THAT(read.status(), IsOk());
    if (!read.ok()) return {};
    auto flat = read->value.flat<double>();
    return {flat.begin(), flat.end()};
  }

  int64_t Step() {
    absl::StatusOr<ReadResult> read = client_->Read("global_step");
    EXPECT_THAT(read.status(), IsOk());
    return read.ok() ? read->value.flat<int64_t>()[0] : -1;
  }

  TestServer server_;
  std::shared_ptr<Client> client_ = server_.NewClient();
};

TEST_F(SyncReplicasTest, MeanOfReplicasAppliesOnceAndStragglerIsDropped) {
  // Four workers, three to aggregate: the fourth is the straggler.
  std::vector<std::shared_ptr<Client>> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(server_.NewClient());

  absl::StatusOr<v1::SyncApplyResponse> r =
      workers[0]->SyncApply(Dense(0, {3, 0, 0, 0, 0, 0}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::ACCUMULATED);
  EXPECT_EQ(r->accumulated(), 1);
  EXPECT_EQ(r->global_step(), 0);
  r = workers[1]->SyncApply(Dense(0, {0, 6, 0, 0, 0, 0}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->accumulated(), 2);
  EXPECT_THAT(W(), ElementsAre(0, 0, 0, 0, 0, 0));  // nothing applied yet
  EXPECT_EQ(Step(), 0);
  r = workers[2]->SyncApply(Dense(0, {0, 0, 9, 0, 0, 3}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_EQ(r->global_step(), 1);
  EXPECT_EQ(r->accumulated(), 0);
  // SGD with the mean gradient: w -= 1 * (sum / 3).
  EXPECT_THAT(W(), ElementsAre(-1, -2, -3, 0, 0, -1));
  EXPECT_EQ(Step(), 1);

  // The straggler's gradient was computed at step 0: dropped and counted.
  r = workers[3]->SyncApply(Dense(0, {30, 30, 30, 30, 30, 30}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::STALE);
  EXPECT_EQ(r->stale_dropped(), 1);
  EXPECT_EQ(r->global_step(), 1);
  EXPECT_THAT(W(), ElementsAre(-1, -2, -3, 0, 0, -1));

  // The next step gathers fresh gradients.
  r = workers[3]->SyncApply(Dense(1, {3, 3, 3, 3, 3, 3}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::ACCUMULATED);
  EXPECT_EQ(r->accumulated(), 1);
  EXPECT_EQ(r->stale_dropped(), 1);
}

TEST_F(SyncReplicasTest, SparseGradientsAverageEachRowOverItsWorkers) {
  ASSERT_THAT(
      client_->SyncApply(Sparse(0, {0, 2, 0}, {1, 1, 4, 4, 3, 3})).status(),
      IsOk());
  absl::StatusOr<v1::SyncApplyResponse> r =
      client_->SyncApply(Sparse(0, {2}, {2, 6}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::APPLIED);
  // Row 0: one worker sent 1+3 (duplicates summed). Row 2: two workers sent
  // 4 and 2 (first column), 4 and 6 (second): their means.
  EXPECT_THAT(W(), ElementsAre(-4, -4, 0, 0, -3, -5));
}

TEST_F(SyncReplicasTest, WaitForStepReturnsWhenTheStepApplies) {
  absl::StatusOr<int64_t> waited;
  absl::Notification done;
  std::thread waiter([&] {
    waited = server_.NewClient()->WaitForStep("", 1, absl::Minutes(10));
    done.Notify();
  });
  ASSERT_THAT(client_->SyncApply(Dense(0, {1, 1, 1, 1, 1, 1}, 2)).status(),
              IsOk());
  // One of two: the waiter must still be waiting.
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  ASSERT_THAT(client_->SyncApply(Dense(0, {1, 1, 1, 1, 1, 1}, 2)).status(),
              IsOk());
  waiter.join();
  ASSERT_THAT(waited.status(), IsOk());
  EXPECT_EQ(*waited, 1);

  // A step already reached answers at once; a wait that outlives its
  // deadline fails with DEADLINE_EXCEEDED.
  EXPECT_EQ(*client_->WaitForStep("global_step", 1, absl::Minutes(10)), 1);
  EXPECT_THAT(client_->WaitForStep("", 2, absl::Milliseconds(100)).status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(client_->WaitForStep("nope", 1, absl::Minutes(10)).status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SyncReplicasTest, ShutdownEndsWaits) {
  ClientOptions once = ::varscope::testing::TestClientOptions();
  once.max_attempts = 1;
  std::shared_ptr<Client> client = server_.NewClient(once);
  absl::StatusOr<int64_t> waited;
  std::thread waiter(
      [&] { waited = client->WaitForStep("", 5, absl::Minutes(10)); });
  const bool waiting = ::varscope::testing::PollUntil(
      [&] { return server_.ServiceForTest().StepWaitersForTest() == 1; });
  EXPECT_TRUE(waiting) << "the call never waited";
  server_.Stop();
  waiter.join();
  // Ended by the server's shutdown, not cancelled after its grace period.
  EXPECT_THAT(waited.status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       EndsWith("unavailable: The server is shutting down")));
}

TEST_F(SyncReplicasTest, RetriedContributionCountsOnce) {
  server_.ServiceForTest().DropUpdateRepliesForTest(1);
  absl::StatusOr<v1::SyncApplyResponse> r =
      client_->SyncApply(Dense(0, {3, 3, 3, 3, 3, 3}, 2));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_TRUE(r->duplicate());  // the reply was lost; the retry was answered
  EXPECT_EQ(r->accumulated(), 1);
  r = client_->SyncApply(Dense(0, {1, 1, 1, 1, 1, 1}, 2));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_THAT(W(), ElementsAre(-2, -2, -2, -2, -2, -2));
}

TEST_F(SyncReplicasTest, BadContributionsAreRejectedAndChangeNothing) {
  ASSERT_THAT(client_->SyncApply(Dense(0, {1, 1, 1, 1, 1, 1})).status(),
              IsOk());
  auto expect = [&](v1::SyncApplyRequest request, absl::StatusCode code,
                    const std::string& message) {
    EXPECT_THAT(client_->SyncApply(std::move(request)).status(),
                StatusIs(code, message));
  };
  v1::SyncApplyRequest r = Dense(0, {1, 1, 1, 1, 1, 1});
  r.clear_accumulator();
  expect(r, absl::StatusCode::kInvalidArgument,
         "A SyncApply needs an accumulator name");
  expect(Dense(0, {1, 1, 1, 1, 1, 1}, 0), absl::StatusCode::kInvalidArgument,
         "replicas_to_aggregate must be at least 1, not 0");
  r = Dense(0, {1, 1, 1, 1, 1, 1});
  r.clear_updates();
  expect(r, absl::StatusCode::kInvalidArgument,
         "A SyncApply needs at least one gradient");
  r = Dense(0, {1, 1, 1, 1, 1, 1});
  TensorToProto(Doubles({3, 2}, {1, 1, 1, 1, 1, 1}),
                r.mutable_updates(0)->mutable_assign_add());
  expect(r, absl::StatusCode::kInvalidArgument,
         "SyncApply takes gradients (apply_gradient updates without an "
         "expected version); the update of w is not one");
  r = Dense(0, {1, 1, 1, 1, 1, 1});
  TensorToProto(
      Doubles({2, 3}, {1, 1, 1, 1, 1, 1}),
      r.mutable_updates(0)->mutable_apply_gradient()->mutable_gradient());
  expect(r, absl::StatusCode::kInvalidArgument,
         "Cannot apply a gradient of shape (2, 3) to variable w of "
         "shape (3, 2)");
  expect(Sparse(0, {3}, {1, 1}), absl::StatusCode::kInvalidArgument,
         "Index 3 at position 0 is out of range for variable w with 3 rows");
  r = Dense(0, {1, 1, 1, 1, 1, 1});
  r.mutable_updates(0)->set_name("v");
  expect(r, absl::StatusCode::kNotFound,
         "Variable v does not exist. Similar names: w");
  expect(Dense(0, {1, 1, 1, 1, 1, 1}, 2), absl::StatusCode::kInvalidArgument,
         "This step aggregates 3 replicas; the contribution asks for 2");
  expect(Sparse(0, {1}, {1, 1}), absl::StatusCode::kInvalidArgument,
         "This step aggregates 3 replicas; the contribution asks for 2");
  r = Dense(0, {1, 1, 1, 1, 1, 1});
  r.mutable_updates(0)
      ->mutable_apply_gradient()
      ->mutable_optimizer()
      ->set_learning_rate(2);
  expect(r, absl::StatusCode::kInvalidArgument,
         "Every contribution to a step must update the same variables, in the "
         "same order, dense or sparse alike, with the same optimizer");
  r = Dense(0, {1, 1, 1, 1, 1, 1});
  r.set_global_step("w");
  expect(r, absl::StatusCode::kInvalidArgument,
         "Global step w must be a scalar int64 variable, not float64 of shape "
         "(3, 2)");

  // Only the first contribution counted.
  absl::StatusOr<v1::SyncApplyResponse> ok =
      client_->SyncApply(Dense(0, {1, 1, 1, 1, 1, 1}));
  ASSERT_THAT(ok.status(), IsOk());
  EXPECT_EQ(ok->accumulated(), 2);
  EXPECT_THAT(W(), ElementsAre(0, 0, 0, 0, 0, 0));
}

// The part of a contribution for a shard without the global step (as a
// client of a cluster sends it): this server's "w" plays that shard's
// variable, with accumulator "part".
v1::SyncApplyRequest Elsewhere(v1::SyncApplyRequest request) {
  request.set_accumulator("part");
  request.mutable_shards()->set_global_step_elsewhere(true);
  request.mutable_shards()->add_others(0);
  return request;
}

TEST_F(SyncReplicasTest, AShardWithoutTheGlobalStepCountsItsOwnSteps) {
  auto apply = [&](v1::SyncApplyRequest request) {
    absl::StatusOr<v1::SyncApplyResponse> r =
        server_.NewClient()->SyncApply(Elsewhere(std::move(request)));
    EXPECT_THAT(r.status(), IsOk());
    return r.value_or(v1::SyncApplyResponse());
  };
  // Its first contribution starts the step it names.
  v1::SyncApplyResponse r = apply(Dense(5, {1, 1, 1, 1, 1, 1}, 2));
  EXPECT_EQ(r.outcome(), v1::SyncApplyResponse::ACCUMULATED);
  EXPECT_EQ(r.global_step(), 5);
  r = apply(Dense(5, {3, 3, 3, 3, 3, 3}, 2));
  EXPECT_EQ(r.outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_EQ(r.global_step(), 6);  // the step it gathers next
  EXPECT_THAT(W(), ElementsAre(-2, -2, -2, -2, -2, -2));
  EXPECT_EQ(Step(), 0);  // the global step is another shard's
  r = apply(Dense(5, {9, 9, 9, 9, 9, 9}, 2));
  EXPECT_EQ(r.outcome(), v1::SyncApplyResponse::STALE);
  EXPECT_EQ(r.stale_dropped(), 1);
  // A newer step drops the step gathered (the global step moved on without
  // it) and starts gathering the new one.
  r = apply(Dense(6, {9, 9, 9, 9, 9, 9}, 2));
  EXPECT_EQ(r.accumulated(), 1);
  r = apply(Dense(8, {1, 1, 1, 1, 1, 1}, 2));
  EXPECT_EQ(r.outcome(), v1::SyncApplyResponse::ACCUMULATED);
  EXPECT_EQ(r.accumulated(), 1);
  EXPECT_EQ(r.global_step(), 8);
  EXPECT_EQ(apply(Dense(7, {9, 9, 9, 9, 9, 9}, 2)).outcome(),
            v1::SyncApplyResponse::STALE);
  r = apply(Dense(8, {1, 1, 1, 1, 1, 1}, 2));
  EXPECT_EQ(r.outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_THAT(W(), ElementsAre(-3, -3, -3, -3, -3, -3));
  EXPECT_EQ(Step(), 0);
}

TEST_F(SyncReplicasTest, AShardWithoutTheGlobalStepAppliesAStepOnce) {
  auto apply = [&](v1::SyncApplyRequest request) {
    absl::StatusOr<v1::SyncApplyResponse> r =
        server_.NewClient()->SyncApply(Elsewhere(std::move(request)));
    EXPECT_THAT(r.status(), IsOk());
    return r.value_or(v1::SyncApplyResponse());
  };
  apply(Dense(3, {1, 1, 1, 1, 1, 1}, 2));
  EXPECT_EQ(apply(Dense(3, {3, 3, 3, 3, 3, 3}, 2)).outcome(),
            v1::SyncApplyResponse::APPLIED);
  EXPECT_THAT(W(), ElementsAre(-2, -2, -2, -2, -2, -2));
  // A restart forgets the accumulator: workers whose step did not complete
  // elsewhere contribute to step 3 again. It counts as applied, once.
  ASSERT_THAT(server_.Restart(), IsOk());
  client_ = server_.NewClient();
  EXPECT_EQ(apply(Dense(3, {5, 5, 5, 5, 5, 5}, 2)).outcome(),
            v1::SyncApplyResponse::ACCUMULATED);
  v1::SyncApplyResponse r = apply(Dense(3, {5, 5, 5, 5, 5, 5}, 2));
  EXPECT_EQ(r.outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_EQ(r.global_step(), 4);
  EXPECT_THAT(W(), ElementsAre(-2, -2, -2, -2, -2, -2));
  apply(Dense(4, {1, 1, 1, 1, 1, 1}, 2));
  EXPECT_EQ(apply(Dense(4, {1, 1, 1, 1, 1, 1}, 2)).outcome(),
            v1::SyncApplyResponse::APPLIED);
  EXPECT_THAT(W(), ElementsAre(-3, -3, -3, -3, -3, -3));
}

TEST_F(SyncReplicasTest, TheGlobalStepWaitsUntilEveryOtherShardApplied) {
  // The global step's part of contributions whose step also has variables
  // on shards 0 and 2.
  auto home = [](v1::SyncApplyRequest request, std::vector<int32_t> applied) {
    request.mutable_shards()->add_others(0);
    request.mutable_shards()->add_others(2);
    for (const int32_t shard : applied) {
      request.mutable_shards()->add_applied(shard);
    }
    return request;
  };
  absl::StatusOr<v1::SyncApplyResponse> r =
      client_->SyncApply(home(Dense(0, {1, 1, 1, 1, 1, 1}, 2), {}));
  ASSERT_THAT(r.status(), IsOk());
  r = client_->SyncApply(home(Dense(0, {3, 3, 3, 3, 3, 3}, 2), {2}));
  ASSERT_THAT(r.status(), IsOk());
  // Both contributions, but shard 0 was not reported applied.
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::ACCUMULATED);
  EXPECT_EQ(r->accumulated(), 2);
  EXPECT_THAT(W(), ElementsAre(0, 0, 0, 0, 0, 0));
  EXPECT_EQ(Step(), 0);
  // A third contribution only reports shard 0: the step applies the first
  // two.
  r = client_->SyncApply(home(Dense(0, {90, 90, 90, 90, 90, 90}, 2), {0}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_EQ(r->global_step(), 1);
  EXPECT_THAT(W(), ElementsAre(-2, -2, -2, -2, -2, -2));
  EXPECT_EQ(Step(), 1);

  // A step with no variables on the global step's shard increments it.
  v1::SyncApplyRequest none = home(Dense(1, {0, 0, 0, 0, 0, 0}, 1), {0, 2});
  none.set_accumulator("elsewhere");
  none.clear_updates();
  r = client_->SyncApply(none);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_EQ(Step(), 2);
}

TEST_F(SyncReplicasTest, BadShardsAreRejectedAndChangeNothing) {
  auto expect = [&](v1::SyncApplyRequest request, const std::string& message) {
    EXPECT_THAT(client_->SyncApply(std::move(request)).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, message));
  };
  v1::SyncApplyRequest r = Dense(0, {1, 1, 1, 1, 1, 1});
  r.mutable_shards()->add_others(2);
  r.mutable_shards()->add_others(1);
  expect(r,
         "The other shards of a contribution must be distinct shard indices "
         "in increasing order, not [2, 1]");
  r.mutable_shards()->set_others(1, 2);
  expect(r,
         "The other shards of a contribution must be distinct shard indices "
         "in increasing order, not [2, 2]");
  r.mutable_shards()->set_others(0, 0);
  r.mutable_shards()->add_applied(3);
  expect(r,
         "A contribution reports shard 3 applied, but its other shards "
         "are [0, 2]");
  r = Elsewhere(Dense(0, {1, 1, 1, 1, 1, 1}));
  r.mutable_shards()->add_applied(0);
  expect(r,
         "A contribution's part for a shard without the global step "
         "(global_step_elsewhere) reports no applied shards");
  expect(Elsewhere(Dense(-1, {1, 1, 1, 1, 1, 1})),
         "A contribution's step must not be negative, not -1");
  r = Dense(0, {1, 1, 1, 1, 1, 1});
  r.clear_updates();
  r.mutable_shards()->add_others(0);
  r.mutable_shards()->set_global_step_elsewhere(true);
  expect(r, "A SyncApply needs at least one gradient");
  EXPECT_THAT(W(), ElementsAre(0, 0, 0, 0, 0, 0));
  EXPECT_EQ(Step(), 0);
}

}  // namespace
}  // namespace varscope
