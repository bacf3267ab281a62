// Steps split over the shards of a 3-shard cluster whose worker died after
// some shards applied their parts: the keeper's intent, and the recovery
// passes that complete such a step (`varscope recover`, a new client of the
// cluster, a consistent cut); intents a live worker's later steps forget;
// bad intents.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/admin_client.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_fixture.h"
#include "tests/testing/updates.h"

namespace varscope::cli::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::StartsWith;
using ::varscope::testing::ChildProcess;
using ::varscope::testing::IsOk;
using ::varscope::testing::IsOkAndHolds;
using ::varscope::testing::PollUntil;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestClientOptions;
using ::varscope::testing::TestServer;
using ::varscope::testing::TestShardOptions;

constexpr int kShards = 3;

Tensor One() {
  const int64_t one = 1;
  return Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&one, 1});
}

class ClusterRecoverTest : public ::testing::Test {
 protected:
  ClusterRecoverTest() {
    std::vector<std::string> addresses;
    for (int i = 0; i < kShards; ++i) {
      shards_.push_back(
          std::make_unique<TestServer>(TestShardOptions(i, kShards)));
      admins_.push_back(
          AdminClient::Connect(shards_[i]->address(), absl::Minutes(10)));
      admin_ptrs_.push_back(admins_.back().get());
      addresses.push_back(shards_[i]->address());
    }
    address_ = absl::StrJoin(addresses, ",");
    for (int i = 0; i < kShards; ++i) {
      names_.push_back(varscope::testing::NameOnShard(i, kShards, "w"));
    }
    client_ = Client::Connect(address_, TestClientOptions());
    for (const std::string& name : names_) {
      EXPECT_THAT(client_
                      ->GetVariable(varscope::testing::CreateRequest(
                          name, v1::DT_INT64, {}))
                      .status(),
                  IsOk());
    }
  }

  // One step adding 1 to every name: a batch on each shard.
  v1::BatchUpdateRequest Step() const {
    v1::BatchUpdateRequest step;
    for (const std::string& name : names_) {
      *step.add_updates() = varscope::testing::WholeUpdate(name, One(), true);
    }
    return step;
  }

  // Every name's value and version, each read from its shard.
  std::vector<std::pair<int64_t, int64_t>> State() {
    std::vector<std::pair<int64_t, int64_t>> state;
    for (int i = 0; i < kShards; ++i) {
      const absl::StatusOr<ReadResult> read =
          shards_[i]->NewClient()->Read(names_[i]);
      EXPECT_THAT(read.status(), IsOk());
      state.emplace_back(read.ok() ? read->value.flat<int64_t>()[0] : -1,
                         read.ok() ? read->version : -1);
    }
    return state;
  }

  int64_t IntentsKeptOn(int shard) {
    const absl::StatusOr<v1::ListIntentsResponse> listed =
        admins_[shard]->ListIntents({});
    EXPECT_THAT(listed.status(), IsOk());
    return listed.ok() ? listed->kept() : -1;
  }

  // Pauses shard 1 (pause "hold"), so that its parts of steps wait, and
  // resumes it.
  void HoldShard1() {
    v1::PauseRequest pause;
    pause.set_pause_id("hold");
    pause.set_reason("a test");
    pause.set_lease_micros(absl::ToInt64Microseconds(absl::Seconds(60)));
    EXPECT_THAT(admins_[1]->Pause(pause).status(), IsOk());
  }
  void ResumeShard1() {
    v1::ResumeRequest resume;
    resume.set_pause_id("hold");
    EXPECT_THAT(admins_[1]->Resume(resume), IsOkAndHolds(::testing::_));
  }

  // A client of the cluster that tries each call once.
  std::shared_ptr<Client> TryingOnce() const {
    ClientOptions once = TestClientOptions();
    once.max_attempts = 1;
    return Client::Connect(address_, once);
  }

  // A worker process (varscope_test_worker train) applies its first step on
  // shards 0 and 2 while shard 1 is paused, and is killed (SIGKILL) while it
  // retries shard 1's part; then shard 1 resumes. Returns the state before
  // the step.
  std::vector<std::pair<int64_t, int64_t>> KillAWorkerMidStep() {
    const std::vector<std::pair<int64_t, int64_t>> before = State();
    HoldShard1();
    std::vector<std::string> argv = {::varscope::testing::TestWorkerPath(),
                                     "train", address_};
    argv.insert(argv.end(), names_.begin(), names_.end());
    absl::StatusOr<std::unique_ptr<ChildProcess>> worker =
        ChildProcess::Start(argv);
    EXPECT_THAT(worker.status(), IsOk());
    // The keeper (shard 0) stored the step's intent with its own part.
    EXPECT_TRUE(PollUntil([&] { return IntentsKeptOn(0) == 1; }));
    (*worker)->Kill(SIGKILL);
    (*worker)->Wait();
    ResumeShard1();
    // Shard 1 never got its part; the others did (or, shard 2, may have).
    EXPECT_EQ(State()[0].first, before[0].first + 1);
    EXPECT_EQ(State()[1], before[1]);
    return before;
  }

  // `before` with every name's value and version raised by one step.
  static std::vector<std::pair<int64_t, int64_t>> OneStepOn(
      std::vector<std::pair<int64_t, int64_t>> before) {
    for (auto& [value, version] : before) {
      ++value;
      ++version;
    }
    return before;
  }

  std::vector<std::unique_ptr<TestServer>> shards_;
  std::vector<std::unique_ptr<AdminClient>> admins_;
  std::vector<AdminClient*> admin_ptrs_;
  std::string address_;
  std::vector<std::string> names_;
  std::shared_ptr<Client> client_;
};

TEST_F(ClusterRecoverTest, RecoverCompletesADeadWorkersStepOnce) {
  const auto before = KillAWorkerMidStep();
  CliResult result = RunCli({"--server", address_, "recover"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out, "Completed 1 step that workers left half applied\n");
  EXPECT_EQ(State(), OneStepOn(before));
  EXPECT_EQ(IntentsKeptOn(0), 0);
  // Again: nothing left, nothing applied twice.
  result = RunCli({"--server", address_, "recover", "--json"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(
      nlohmann::json::parse(result.out),
      nlohmann::json({{"completed", 0}, {"dropped", nlohmann::json::array()}}));
  EXPECT_EQ(State(), OneStepOn(before));
  // A single server is not a cluster's list.
  result = RunCli({"--server", shards_[0]->address(), "recover"});
  EXPECT_EQ(result.code, 3);
  EXPECT_EQ(
      result.err,
      absl::StrCat("varscope recover: FAILED_PRECONDITION: Recovery needs "
                   "the cluster's shard list, in its order "
                   "(--server HOST:PORT,HOST:PORT,...), not the one "
                   "server ",
                   shards_[0]->address(), "\n"));
}

TEST_F(ClusterRecoverTest, ANewClientOfTheClusterCompletesADeadWorkersStep) {
  const auto before = KillAWorkerMidStep();
  // Too young for a client that leaves steps to their workers for an hour.
  ClientOptions patient = TestClientOptions();
  patient.recover_after = absl::Hours(1);
  ASSERT_THAT(Client::Connect(address_, patient)->Read(names_[1]).status(),
              IsOk());
  EXPECT_EQ(IntentsKeptOn(0), 1);
  ClientOptions restarted = TestClientOptions();
  restarted.recover_after = absl::ZeroDuration();
  // Its first call checks the cluster and completes the step first.
  const absl::StatusOr<ReadResult> read =
      Client::Connect(address_, restarted)->Read(names_[1]);
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(read->value.flat<int64_t>()[0], before[1].first + 1);
  EXPECT_EQ(State(), OneStepOn(before));
  EXPECT_EQ(IntentsKeptOn(0), 0);
  // Recovering again, by two passes at once, applies nothing twice.
  std::vector<absl::StatusOr<Recovered>> passes(2, Recovered{});
  std::thread other([&] { passes[1] = RecoverSteps(admin_ptrs_, {}); });
  passes[0] = RecoverSteps(admin_ptrs_, {});
  other.join();
  for (const absl::StatusOr<Recovered>& pass : passes) {
    ASSERT_THAT(pass.status(), IsOk());
    EXPECT_EQ(pass->completed, 0);
  }
  EXPECT_EQ(State(), OneStepOn(before));
}

TEST_F(ClusterRecoverTest, ACutCompletesADeadWorkersStepInsteadOfAbandoningIt) {
  const auto before = KillAWorkerMidStep();
  CutOptions options;
  options.abandoned_after = absl::ZeroDuration();
  Cut taken;
  ASSERT_THAT(WithConsistentCut(admin_ptrs_, options,
                                [&](const Cut& cut) {
                                  taken = cut;
                                  EXPECT_EQ(State(), OneStepOn(before));
                                  return absl::OkStatus();
                                }),
              IsOk());
  EXPECT_EQ(taken.recovered, 1);
  EXPECT_EQ(taken.completed, 0);
  EXPECT_THAT(taken.abandoned, ElementsAre());
  EXPECT_EQ(IntentsKeptOn(0), 0);
}

TEST_F(ClusterRecoverTest, ALiveWorkersLaterStepsForgetItsIntents) {
  const auto before = State();
  ASSERT_THAT(client_->BatchUpdate(Step()).status(), IsOk());
  // Nothing told the first step's keeper (shard 0) yet that the step ended
  // everywhere.
  EXPECT_EQ(IntentsKeptOn(0), 1);
  EXPECT_EQ(IntentsKeptOn(1), 0);
  // The second step is kept by the next shard, and tells shard 0.
  ASSERT_THAT(client_->BatchUpdate(Step()).status(), IsOk());
  EXPECT_EQ(IntentsKeptOn(0), 0);
  EXPECT_EQ(IntentsKeptOn(1), 1);
  // A step on shard 1 alone tells it.
  v1::BatchUpdateRequest alone;
  *alone.add_updates() = varscope::testing::WholeUpdate(names_[1], One(), true);
  ASSERT_THAT(client_->BatchUpdate(alone).status(), IsOk());
  for (int i = 0; i < kShards; ++i) EXPECT_EQ(IntentsKeptOn(i), 0);
  auto after = OneStepOn(OneStepOn(before));
  ++after[1].first;
  ++after[1].second;
  EXPECT_EQ(State(), after);
  // Forgotten for good: a restart of the keeper loads none.
  ASSERT_THAT(shards_[1]->Restart(), IsOk());
  admins_[1] = AdminClient::Connect(shards_[1]->address(), absl::Minutes(10));
  EXPECT_EQ(IntentsKeptOn(1), 0);
}

TEST_F(ClusterRecoverTest, AFailedStepsIntentOutlivesTheWorkersLaterSteps) {
  const auto before = State();
  // Shard 1 is paused and the worker tries once: its first step applies on
  // shard 0, its keeper, and fails; the worker goes on.
  HoldShard1();
  const std::shared_ptr<Client> worker = TryingOnce();
  EXPECT_THAT(worker->BatchUpdate(Step()).status(),
              StatusIs(absl::StatusCode::kUnavailable));
  ResumeShard1();
  EXPECT_EQ(State()[0], OneStepOn(before)[0]);
  EXPECT_EQ(State()[1], before[1]);
  // Its next steps tell every shard that they are complete, but not the
  // failed one: its intent stays for a recovery pass.
  ASSERT_THAT(worker->BatchUpdate(Step()).status(), IsOk());
  v1::BatchUpdateRequest alone;
  *alone.add_updates() = varscope::testing::WholeUpdate(names_[1], One(), true);
  ASSERT_THAT(worker->BatchUpdate(alone).status(), IsOk());
  EXPECT_EQ(IntentsKeptOn(0), 1);
  EXPECT_EQ(IntentsKeptOn(1), 0);
  EXPECT_EQ(IntentsKeptOn(2), 0);
  const absl::StatusOr<Recovered> recovered = RecoverSteps(admin_ptrs_, {});
  ASSERT_THAT(recovered.status(), IsOk());
  EXPECT_EQ(recovered->completed, 1);
  auto after = OneStepOn(OneStepOn(before));
  ++after[1].first;
  ++after[1].second;
  EXPECT_EQ(State(), after);
  EXPECT_EQ(IntentsKeptOn(0), 0);
}

TEST_F(ClusterRecoverTest, TheKeepersOfAClientsStepsTakeTurns) {
  // Each spanning step is kept by the next shard of its span in turn, so
  // that no one shard receives every step whole.
  for (int step = 0; step < 2 * kShards; ++step) {
    const auto before = State();
    ASSERT_THAT(client_->BatchUpdate(Step()).status(), IsOk());
    EXPECT_EQ(State(), OneStepOn(before));
    for (int i = 0; i < kShards; ++i) {
      EXPECT_EQ(IntentsKeptOn(i), i == step % kShards ? 1 : 0)
          << "step " << step << ", shard " << i;
    }
  }
}

TEST_F(ClusterRecoverTest, AnIntentSurvivesTheKeepersRestart) {
  const auto before = KillAWorkerMidStep();
  ASSERT_THAT(shards_[0]->Restart(), IsOk());
  admins_[0] = AdminClient::Connect(shards_[0]->address(), absl::Minutes(10));
  admin_ptrs_[0] = admins_[0].get();
  EXPECT_EQ(IntentsKeptOn(0), 1);
  const absl::StatusOr<Recovered> recovered = RecoverSteps(admin_ptrs_, {});
  ASSERT_THAT(recovered.status(), IsOk());
  EXPECT_EQ(recovered->completed, 1);
  // Shard 0 has a new address: read each name from its shard.
  EXPECT_EQ(State(), OneStepOn(before));
}

TEST_F(ClusterRecoverTest, AnEmbeddingStepLeftHalfIsCompletedOnce) {
  v1::GetEmbeddingVariableRequest create;
  create.set_name("emb");
  create.set_mode(v1::AUTO_REUSE);
  create.set_embedding_dim(2);
  ASSERT_THAT(client_->GetEmbeddingVariable(create).status(), IsOk());
  // A key on each shard (shard 0 is the keeper). A lookup needs one on
  // every shard: a shard without keys fails it (a client bug, see the
  // report).
  std::vector<int64_t> keys;
  for (const int shard : {0, 1, 2}) {
    for (int64_t key = 1;; ++key) {
      if (EmbeddingShardOf(key, kShards) == shard) {
        keys.push_back(key);
        break;
      }
    }
  }
  const Tensor key_tensor =
      Tensor::FromVector<int64_t>(v1::DT_INT64, {3}, keys);
  const auto rows = [&] {
    const absl::StatusOr<Tensor> looked =
        client_->EmbeddingLookup("emb", key_tensor, std::nullopt, true);
    EXPECT_THAT(looked.status(), IsOk());
    const auto flat = looked->flat<float>();
    return std::vector<float>(flat.begin(), flat.end());
  };
  const std::vector<float> before = rows();
  // Shard 1 is paused and the worker tries once: its step applies on shard
  // 0 only and fails.
  HoldShard1();
  v1::Optimizer sgd;
  sgd.set_learning_rate(1);
  sgd.mutable_gradient_descent();
  const std::vector<float> ones(6, 1.0f);
  EXPECT_THAT(
      TryingOnce()
          ->EmbeddingApply(
              "emb", key_tensor,
              Tensor::FromVector<float>(v1::DT_FLOAT, {3, 2}, ones), sgd)
          .status(),
      StatusIs(absl::StatusCode::kUnavailable));
  ResumeShard1();
  // Shard 0 applied its part; shard 1 did not; shard 2 may have.
  std::vector<float> after = rows();
  EXPECT_EQ(after[0], before[0] - 1);
  EXPECT_EQ(after[1], before[1] - 1);
  EXPECT_EQ(after[2], before[2]);
  EXPECT_EQ(after[3], before[3]);
  for (int pass = 0; pass < 2; ++pass) {
    const absl::StatusOr<Recovered> recovered = RecoverSteps(admin_ptrs_, {});
    ASSERT_THAT(recovered.status(), IsOk());
    EXPECT_EQ(recovered->completed, 1 - pass);
    std::vector<float> whole = before;
    for (float& x : whole) x -= 1;
    EXPECT_EQ(rows(), whole);
  }
}

TEST_F(ClusterRecoverTest, BadIntentsAreRefusedAndStoreNothing) {
  const auto before = State();
  // The keeper's batch of a step over shards 0 and 1, by hand.
  v1::BatchUpdateRequest keeper;
  *keeper.add_updates() =
      varscope::testing::WholeUpdate(names_[0], One(), true);
  keeper.mutable_id()->set_client_id("hand");
  keeper.mutable_id()->set_sequence(1);
  keeper.add_span_shards(0);
  keeper.add_span_shards(1);
  v1::BatchUpdateRequest other;
  *other.add_updates() = varscope::testing::WholeUpdate(names_[1], One(), true);
  *other.mutable_id() = keeper.id();
  *other.mutable_span_shards() = keeper.span_shards();
  const auto stub = v1::VariableService::NewStub(grpc::CreateChannel(
      shards_[0]->address(), grpc::InsecureChannelCredentials()));
  const auto send = [&](const v1::BatchUpdateRequest& request) {
    grpc::ClientContext context;
    v1::BatchUpdateResponse response;
    const grpc::Status status = stub->BatchUpdate(&context, request, &response);
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  };
  const auto with_part = [&](int shard, const std::string& bytes) {
    v1::BatchUpdateRequest request = keeper;
    v1::IntentPart* part = request.add_intent();
    part->set_shard(shard);
    part->set_batch_update(bytes);
    return request;
  };
  EXPECT_THAT(
      send(with_part(2, other.SerializeAsString())),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "The intent's part for shard 2 is not for another shard of the "
               "step's span_shards (0, 1; the first is the keeper)"));
  EXPECT_THAT(
      send(with_part(0, other.SerializeAsString())),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "The intent's part for shard 0 is not for another shard of the "
               "step's span_shards (0, 1; the first is the keeper)"));
  EXPECT_THAT(send(with_part(1, "\x0a\x05xy")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The intent's part for shard 1 does not parse as a "
                       "BatchUpdateRequest"));
  v1::BatchUpdateRequest stranger = other;
  stranger.mutable_id()->set_sequence(2);
  EXPECT_THAT(send(with_part(1, stranger.SerializeAsString())),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The intent's part for shard 1 is not of the same "
                       "step: its id and span_shards must be the request's, "
                       "and it carries no intent"));
  v1::BatchUpdateRequest twice = with_part(1, other.SerializeAsString());
  *twice.add_intent() = twice.intent(0);
  EXPECT_THAT(send(twice), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "The intent has two parts for shard 1"));
  v1::BatchUpdateRequest empty = keeper;
  empty.add_intent()->set_shard(1);
  EXPECT_THAT(send(empty), StatusIs(absl::StatusCode::kInvalidArgument,
                                    "The intent's part for shard 1 holds no "
                                    "request"));
  v1::BatchUpdateRequest anonymous = with_part(1, other.SerializeAsString());
  anonymous.clear_id();
  EXPECT_THAT(send(anonymous),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A request with an intent needs the step's "
                       "exactly-once id"));
  // Nothing applied, nothing kept, and the id is still free.
  EXPECT_EQ(State(), before);
  EXPECT_EQ(IntentsKeptOn(0), 0);
  ASSERT_THAT(send(with_part(1, other.SerializeAsString())), IsOk());
  EXPECT_EQ(IntentsKeptOn(0), 1);
  const absl::StatusOr<Recovered> recovered = RecoverSteps(admin_ptrs_, {});
  ASSERT_THAT(recovered.status(), IsOk());
  EXPECT_EQ(recovered->completed, 1);
  auto after = before;
  for (int i : {0, 1}) {
    ++after[i].first;
    ++after[i].second;
  }
  EXPECT_EQ(State(), after);
}

}  // namespace
}  // namespace varscope::cli::testing
