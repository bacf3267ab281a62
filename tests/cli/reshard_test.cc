// `varscope reshard`: a cluster of in-process shards on port 0 (their
// identities recorded with their real addresses, so that clients can follow
// the new list), re-sharded 2 -> 3 -> 2.
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/admin_client.h"
#include "common/cluster.h"
#include "common/names.h"
#include "common/status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::varscope::testing::IsOk;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestClientOptions;
using ::varscope::testing::TestServer;

// What a variable holds: its bytes and version.
struct Held {
  std::string bytes;
  int64_t version = 0;
  bool operator==(const Held&) const = default;
};

// A get_variable creating `name`, float32 [1] of zeros.
v1::GetVariableRequest Scalar(const std::string& name) {
  v1::GetVariableRequest get;
  get.set_name(name);
  get.set_mode(v1::CREATE);
  get.set_dtype(v1::DT_FLOAT);
  get.mutable_shape()->add_dims(1);
  get.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  return get;
}

class ReshardTest : public ::testing::Test {
 protected:
  ReshardTest() {
    for (int i = 0; i < 3; ++i)
      shards_.push_back(std::make_unique<TestServer>());
  }

  // The addresses of shards `order`, comma-separated.
  std::string List(const std::vector<int>& order) const {
    std::vector<std::string> addresses;
    for (const int i : order) addresses.push_back(shards_[i]->address());
    return absl::StrJoin(addresses, ",");
  }

  // Records on shards `order` their places in a cluster of them (as
  // varscoped --cluster=... --shard-index=I does at a first start).
  void Form(const std::vector<int>& order) {
    const std::vector<std::string> list = absl::StrSplit(List(order), ',');
    for (size_t i = 0; i < order.size(); ++i) {
      v1::SetClusterIdentityRequest request;
      v1::ClusterIdentity& identity = *request.mutable_identity();
      identity.set_cluster_id(DerivedClusterId(list));
      identity.set_shard_index(static_cast<int32_t>(i));
      identity.set_shard_count(static_cast<int32_t>(list.size()));
      identity.mutable_shards()->Assign(list.begin(), list.end());
      ASSERT_THAT(Admin(order[i])->SetClusterIdentity(request).status(),
                  IsOk());
    }
  }

  std::unique_ptr<AdminClient> Admin(int shard) const {
    return AdminClient::Connect(shards_[shard]->address(), absl::Minutes(10));
  }

  CliResult Reshard(const std::vector<int>& from, const std::vector<int>& to) {
    return RunCli({"reshard", "--from", List(from), "--to", List(to)});
  }

  // Every variable of shard `i`, asked alone.
  std::map<std::string, Held> On(int i) {
    std::map<std::string, Held> held;
    std::shared_ptr<Client> alone = shards_[i]->NewClient();
    v1::ListVariablesRequest list;
    list.set_recursive(true);
    EXPECT_THAT(alone->ForEachPage(
                    list,
                    [&](v1::ListVariablesResponse& page) {
                      for (const auto& e : page.entries()) {
                        absl::StatusOr<ReadResult> read = alone->Read(e.name());
                        VS_RETURN_IF_ERROR(read.status());
                        held[e.name()] = {std::string(read->value.bytes()),
                                          read->version};
                      }
                      return absl::OkStatus();
                    }),
                IsOk());
    return held;
  }

  // Every variable of shards `order`, checking that each lives on the shard
  // the list of them places it on.
  std::map<std::string, Held> Placed(const std::vector<int>& order) {
    std::map<std::string, Held> all;
    for (size_t i = 0; i < order.size(); ++i) {
      for (auto& [name, held] : On(order[i])) {
        EXPECT_EQ(ShardOf(name, static_cast<int>(order.size())),
                  static_cast<int>(i))
            << name << " on shard " << i;
        EXPECT_TRUE(all.emplace(name, held).second) << name << " twice";
      }
    }
    return all;
  }

  // A model on `client`: 30 variables of 2 floats with versions 2 to 4, a
  // partitioned variable of 6 parts, and Adagrad slots of two parts and of
  // three variables.
  void Populate(Client& client) {
    for (int i = 0; i < 30; ++i) {
      v1::GetVariableRequest get;
      get.set_name(absl::StrCat("model/layer", i % 4, "/w", i));
      get.set_mode(v1::CREATE);
      get.set_dtype(v1::DT_FLOAT);
      get.mutable_shape()->add_dims(2);
      get.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
      ASSERT_THAT(client.GetVariable(get).status(), IsOk());
      for (int k = 0; k <= i % 3; ++k) {
        ASSERT_THAT(
            client.AssignAdd(get.name(), Floats({2}, {1.0f * i, 2})).status(),
            IsOk());
      }
    }
    v1::GetVariableRequest emb;
    emb.set_name("emb");
    emb.set_mode(v1::CREATE);
    emb.set_dtype(v1::DT_FLOAT);
    emb.mutable_shape()->add_dims(12);
    emb.mutable_shape()->add_dims(2);
    emb.mutable_initializer()->set_kind(v1::Initializer::RANDOM_NORMAL);
    emb.mutable_partitioner()->mutable_fixed_size()->set_num_shards(6);
    ASSERT_THAT(client.GetVariable(emb).status(), IsOk());
    v1::BatchUpdateRequest step;
    for (const std::string name :
         {"emb/part_1", "emb/part_4", "model/layer0/w0", "model/layer1/w5",
          "model/layer2/w10"}) {
      v1::Update* update = step.add_updates();
      update->set_name(name);
      update->mutable_apply_gradient()->mutable_optimizer()->set_learning_rate(
          1);
      update->mutable_apply_gradient()->mutable_optimizer()->mutable_adagrad();
      TensorToProto(name.starts_with("emb") ? Floats({2, 2}, {1, 2, 3, 4})
                                            : Floats({2}, {1, 2}),
                    update->mutable_apply_gradient()->mutable_gradient());
    }
    ASSERT_THAT(client.BatchUpdate(step).status(), IsOk());
  }

  std::vector<std::unique_ptr<TestServer>> shards_;
};

TEST_F(ReshardTest, TwoToThreeToTwoKeepsValuesVersionsAndSlots) {
  Form({0, 1});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1}), TestClientOptions());
  Populate(*worker);
  const std::map<std::string, Held> before = Placed({0, 1});
  ASSERT_EQ(before.size(), 30u + 6 + 5);
  ASSERT_TRUE(before.contains("emb/part_4/Adagrad"));

  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(grown.code, 0) << grown.err;
  EXPECT_THAT(grown.out,
              HasSubstr(absl::StrCat("(3 shards: ", List({0, 1, 2}), ")")));
  EXPECT_EQ(Placed({0, 1, 2}), before);
  // Every shard records its new place.
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::ServerInfo> info =
        shards_[i]->NewClient()->GetServerInfo();
    ASSERT_THAT(info.status(), IsOk());
    EXPECT_EQ(info->cluster().shard_index(), i);
    EXPECT_EQ(info->cluster().shard_count(), 3);
    EXPECT_EQ(absl::StrJoin(info->cluster().shards(), ","), List({0, 1, 2}));
  }

  // The worker, started with the old list, follows: it reads what it wrote
  // and keeps training.
  absl::StatusOr<ReadResult> read = worker->Read("model/layer3/w7");
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(read->version, before.at("model/layer3/w7").version);
  for (int i = 0; i < 30; ++i) {
    ASSERT_THAT(worker
                    ->AssignAdd(absl::StrCat("model/layer", i % 4, "/w", i),
                                Floats({2}, {1, 1}))
                    .status(),
                IsOk());
  }
  std::map<std::string, Held> trained = Placed({0, 1, 2});
  for (int i = 0; i < 30; ++i) {
    const std::string name = absl::StrCat("model/layer", i % 4, "/w", i);
    EXPECT_EQ(trained.at(name).version, before.at(name).version + 1) << name;
  }

  CliResult shrunk = Reshard({0, 1, 2}, {0, 1});
  ASSERT_EQ(shrunk.code, 0) << shrunk.err;
  EXPECT_EQ(Placed({0, 1}), trained);
  EXPECT_TRUE(On(2).empty());
  absl::StatusOr<v1::ServerInfo> removed =
      shards_[2]->NewClient()->GetServerInfo();
  ASSERT_THAT(removed.status(), IsOk());
  EXPECT_TRUE(removed->cluster().removed());
  // The worker follows again, from the three shards to two.
  read = worker->Read("model/layer3/w7");
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(read->version, trained.at("model/layer3/w7").version);
}

// A name that the list of shards 0,1 places on shard `home` and the list
// 0,1,2 on shard 2.
std::string MovingName(int home) {
  for (int i = 0;; ++i) {
    std::string name = absl::StrCat("v", i);
    if (ShardOf(name, 2) == home && ShardOf(name, 3) == 2) return name;
  }
}

TEST_F(ReshardTest, AStepRetriedAfterTheMoveIsRecognised) {
  Form({0, 1});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1}), TestClientOptions());
  const std::string a = MovingName(0);
  const std::string b = MovingName(1);
  for (const std::string& name : {a, b}) {
    ASSERT_THAT(worker->GetVariable(Scalar(name)).status(), IsOk());
  }
  // A step on both shards, whose answer the worker "lost".
  v1::BatchUpdateRequest step;
  for (const std::string& name : {a, b}) {
    v1::Update* update = step.add_updates();
    update->set_name(name);
    TensorToProto(Floats({1}, {1}), update->mutable_assign_add());
  }
  step.mutable_id()->set_client_id(worker->client_id());
  step.mutable_id()->set_sequence(1000);
  ASSERT_THAT(worker->BatchUpdate(step).status(), IsOk());
  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(grown.code, 0) << grown.err;
  ASSERT_EQ(On(2).size(), 2u);  // both moved to the new shard

  // Sent again with its id, at the new shard: a repeat, applied once.
  absl::StatusOr<v1::BatchUpdateResponse> retried = worker->BatchUpdate(step);
  ASSERT_THAT(retried.status(), IsOk());
  EXPECT_TRUE(retried->duplicate());
  for (const std::string& name : {a, b}) {
    absl::StatusOr<ReadResult> read = worker->Read(name);
    ASSERT_THAT(read.status(), IsOk());
    EXPECT_EQ(read->value.bytes(), Floats({1}, {1}).bytes()) << name;
    EXPECT_EQ(read->version, 2) << name;
  }
}

TEST_F(ReshardTest, AnInterruptedReshardCompletesWhenRunAgain) {
  Form({0, 1});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1}), TestClientOptions());
  Populate(*worker);
  const std::map<std::string, Held> before = Placed({0, 1});
  // Interrupted while switching: shards 0 and 2 have their new places,
  // shard 1 its old one, and the copies are on shard 2 next to the
  // originals.
  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(grown.code, 0) << grown.err;
  Form({0, 1});  // back to the old places...
  {
    // ... but shard 0 in its new one.
    const std::vector<std::string> to = absl::StrSplit(List({0, 1, 2}), ',');
    v1::SetClusterIdentityRequest place;
    place.mutable_identity()->set_cluster_id(DerivedClusterId(to));
    place.mutable_identity()->set_shard_count(3);
    place.mutable_identity()->mutable_shards()->Assign(to.begin(), to.end());
    ASSERT_THAT(Admin(0)->SetClusterIdentity(place).status(), IsOk());
  }
  // The first run deleted the originals: put them back, as a run cut short
  // before deleting leaves them.
  std::vector<std::string> moved;
  for (const auto& [name, held] : Placed({0, 1, 2})) {
    const int now = ShardOf(name, 3);
    const int home = ShardOf(name, 2);
    if (now == home) continue;
    moved.push_back(name);
    v1::ExportVariablesRequest one;
    one.add_names(name);
    absl::StatusOr<v1::ExportVariablesResponse> exported =
        Admin(now)->ExportVariables(one);
    ASSERT_THAT(exported.status(), IsOk());
    v1::InstallVariablesRequest install;
    *install.add_variables() = exported->variables(0);
    ASSERT_THAT(Admin(home)->InstallVariables(install).status(), IsOk());
  }
  ASSERT_FALSE(moved.empty());
  // Meanwhile the originals changed (the cluster was still the old one).
  const std::string changed = *std::find_if(
      moved.begin(), moved.end(),
      [](const std::string& name) { return name.starts_with("model/"); });
  {
    std::shared_ptr<Client> alone = shards_[ShardOf(changed, 2)]->NewClient();
    ASSERT_THAT(alone->AssignAdd(changed, Floats({2}, {1, 1})).status(),
                IsOk());
  }
  // What the cluster holds: each name's original, on its old shard.
  std::map<std::string, Held> expected;
  for (const int i : {0, 1}) {
    for (auto& [name, held] : On(i)) {
      if (ShardOf(name, 2) == i) expected[name] = held;
    }
  }
  ASSERT_EQ(expected.at(changed).version, before.at(changed).version + 1);

  CliResult again = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(Placed({0, 1, 2}), expected);
  // Run once more: nothing left to do.
  CliResult third = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(third.code, 0) << third.err;
  EXPECT_THAT(third.out, HasSubstr(": 0 variables copied (0 B), 0 variables "
                                   "deleted from their old shards"));
  EXPECT_EQ(Placed({0, 1, 2}), expected);
}

TEST_F(ReshardTest, BadInputChangesNothing) {
  Form({0, 1});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1}), TestClientOptions());
  Populate(*worker);
  const std::map<std::string, Held> before = Placed({0, 1});
  const std::string a = shards_[0]->address();
  const std::string b = shards_[1]->address();
  const std::string c = shards_[2]->address();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{"--from", absl::StrCat(a, ",", b), "--to",
        absl::StrCat(a, ",", b, ",", a)},
       2,
       absl::StrCat("varscope reshard: INVALID_ARGUMENT: --to lists ", a,
                    " twice; give every shard's HOST:PORT, comma-separated, "
                    "in cluster order\n")},
      {{"--from", absl::StrCat(a, ",,", b), "--to", c},
       2,
       "varscope reshard: INVALID_ARGUMENT: --from has the entry ''; give "
       "every shard's HOST:PORT, comma-separated, in cluster order\n"},
      {{"--from", absl::StrCat(a, ",", b), "--to", absl::StrCat(a, ",", b)},
       2,
       "varscope reshard: INVALID_ARGUMENT: --from and --to list the same "
       "shards in the same order: nothing moves\n"},
      {{"--from", absl::StrCat(b, ",", a), "--to",
        absl::StrCat(a, ",", b, ",", c)},
       3,
       absl::StrCat("varscope reshard: FAILED_PRECONDITION: Cannot re-shard: ",
                    b, " is shard 1 of 2 of cluster ", DerivedClusterId({a, b}),
                    " (shards ", a, ",", b,
                    "), but --from lists it as shard 0 of 2 of cluster ",
                    DerivedClusterId({a, b}),
                    ". Give --from the cluster's shards in its order\n")},
      {{"--from", absl::StrCat(a, ",", b), "--to",
        absl::StrCat(a, ",", b, ",", a.substr(0, a.find(':')), ":1")},
       3,
       absl::StrCat("varscope reshard: UNAVAILABLE: GetServerInfo of the "
                    "server: varscoped at ",
                    a.substr(0, a.find(':')), ":1 unavailable after ")},
  };
  for (const Case& test : cases) {
    std::vector<std::string> args = {"reshard"};
    args.insert(args.end(), test.args.begin(), test.args.end());
    CliResult result = RunCli(args);
    EXPECT_EQ(result.code, test.code) << result.err;
    EXPECT_THAT(result.err, ::testing::StartsWith(test.err));
  }
  // A new shard that holds variables of its own.
  ASSERT_THAT(shards_[2]->NewClient()->Assign("x", Floats({1}, {1})).status(),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(shards_[2]->NewClient()->GetVariable(Scalar("x")).status(),
              IsOk());
  CliResult taken = Reshard({0, 1}, {0, 1, 2});
  EXPECT_EQ(taken.code, 3);
  EXPECT_EQ(taken.err,
            absl::StrCat("varscope reshard: FAILED_PRECONDITION: Cannot "
                         "re-shard: the new shard ",
                         c,
                         " is a standalone server (not a shard of a cluster) "
                         "and holds 1 variable; start a shard a re-shard adds "
                         "on an empty data directory, with the new list's "
                         "flags (--cluster=",
                         List({0, 1, 2}), " --shard-index=2) or none\n"));
  EXPECT_EQ(Placed({0, 1}), before);
}

TEST_F(ReshardTest, WorkersTrainThroughAReshardWithEveryStepOnce) {
  Form({0, 1});
  const std::vector<std::string> names = {"a", "b", "c", "d",
                                          "e", "f", "g", "h"};
  {
    std::shared_ptr<Client> setup =
        Client::Connect(List({0, 1}), TestClientOptions());
    for (const std::string& name : names) {
      ASSERT_THAT(setup->GetVariable(Scalar(name)).status(), IsOk());
    }
  }
  // Workers of the old list, each on its own connection: every step adds 1
  // to every variable, split over the shards.
  constexpr int kWorkers = 3;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> steps[kWorkers] = {};
  std::vector<absl::Status> errors(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      ClientOptions options = TestClientOptions();
      options.own_connection = true;
      std::shared_ptr<Client> client = Client::Connect(List({0, 1}), options);
      while (!stop.load()) {
        v1::BatchUpdateRequest step;
        for (const std::string& name : names) {
          v1::Update* update = step.add_updates();
          update->set_name(name);
          TensorToProto(Floats({1}, {1}), update->mutable_assign_add());
        }
        absl::Status status = client->BatchUpdate(step).status();
        if (!status.ok()) {
          errors[w] = status;
          return;
        }
        ++steps[w];
      }
    });
  }
  auto all_reach = [&](int64_t n) {
    return ::varscope::testing::PollUntil([&] {
      for (const auto& s : steps) {
        if (s.load() < n) return false;
      }
      return true;
    });
  };
  ASSERT_TRUE(all_reach(20)) << "the workers did not start";
  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  EXPECT_EQ(grown.code, 0) << grown.err;
  int64_t at_switch = 0;
  for (const auto& s : steps) at_switch = std::max(at_switch, s.load());
  EXPECT_TRUE(all_reach(at_switch + 20)) << "the workers stopped";
  stop = true;
  for (std::thread& t : workers) t.join();
  for (const absl::Status& error : errors) EXPECT_THAT(error, IsOk());
  int64_t total = 0;
  for (const auto& s : steps) total += s.load();
  // Every step counted once on every variable, wherever it lives now.
  const std::map<std::string, Held> held = Placed({0, 1, 2});
  for (const std::string& name : names) {
    std::string expected = Floats({1}, {static_cast<float>(total)}).bytes();
    EXPECT_EQ(held.at(name).bytes, expected) << name;
    EXPECT_EQ(held.at(name).version, 1 + total) << name;
  }
}

}  // namespace
}  // namespace varscope::cli::testing
