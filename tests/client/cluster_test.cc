// A client of a cluster of three shards: placement by name, and the calls
// that visit several shards.
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/variable_scope.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/table/optimizers.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::varscope::testing::IsOk;
using ::varscope::testing::IsOkAndHolds;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;
using ::varscope::testing::TestShardList;
using ::varscope::testing::TestShardOptions;

TEST(ShardOfTest, IsStableAndSpreadsNames) {
  // Pinned: clients of every version must agree on where a name lives.
  EXPECT_EQ(ShardOf("a", 3), ShardOf("a", 3));
  std::vector<int> pinned;
  for (const char* name : {"w", "model/emb", "global_step", "layer_1/bias"}) {
    pinned.push_back(ShardOf(name, 3));
  }
  EXPECT_THAT(pinned, ElementsAre(1, 2, 1, 1));
  std::map<int, int> counts;
  for (int i = 0; i < 3000; ++i) ++counts[ShardOf(absl::StrCat("v", i), 3)];
  for (const auto& [shard, count] : counts) {
    EXPECT_GT(count, 900) << shard;
    EXPECT_LT(count, 1100) << shard;
  }
  // Removing the last shard moves only the names it held.
  for (int i = 0; i < 1000; ++i) {
    const std::string name = absl::StrCat("v", i);
    if (ShardOf(name, 3) != 2) {
      EXPECT_EQ(ShardOf(name, 2), ShardOf(name, 3)) << name;
    }
  }
}

TEST(ShardOfTest, PartsAndSlotsGoWithTheirVariable) {
  EXPECT_EQ(ShardingName("emb/part_12"), "emb");
  EXPECT_EQ(ShardingName("emb/part_0/Adagrad"), "emb");
  EXPECT_EQ(ShardingName("s/w/Adam_beta1_power"), "s/w");
  EXPECT_EQ(ShardingName("s/w/part_x"), "s/w/part_x");
  EXPECT_EQ(ShardingName("s/part_1/w"), "s/part_1/w");
  EXPECT_EQ(ShardingName("Adam"), "Adam");
}

TEST(ShardOfTest, EveryOptimizerSlotGoesWithItsVariable) {
  std::vector<v1::Optimizer> specs(6);
  specs[0].mutable_momentum();
  specs[1].mutable_adagrad();
  v1::Optimizer::Adam* adam = specs[2].mutable_adam();
  adam->mutable_beta1_power()->set_variable("beta1_power");
  adam->mutable_beta2_power()->set_variable("beta2_power");
  specs[3].mutable_rms_prop()->set_centered(true);
  specs[4].mutable_ftrl();
  specs[5].mutable_gradient_descent();
  for (v1::Optimizer& spec : specs) {
    spec.set_learning_rate(0.1);
    absl::StatusOr<server::OptimizerStep> step =
        server::OptimizerStep::Resolve(spec);
    ASSERT_THAT(step.status(), IsOk());
    for (const server::SlotSpec& slot : step->slots()) {
      EXPECT_EQ(ShardingName(absl::StrCat("s/w/", slot.suffix)), "s/w")
          << slot.suffix;
    }
  }
}

class ClusterTest : public ::testing::Test {
 protected:
  ClusterTest() {
    for (int i = 0; i < 3; ++i) {
      shards_.push_back(std::make_unique<TestServer>(TestShardOptions(i, 3)));
    }
    client_ = Client::Connect(Addresses({0, 1, 2}));
  }

  // The addresses of shards `order`, comma-separated.
  std::string Addresses(const std::vector<int>& order) const {
    std::vector<std::string> addresses;
    for (const int i : order) addresses.push_back(shards_[i]->address());
    return absl::StrJoin(addresses, ",");
  }

  absl::StatusOr<Variable> Create(
      const std::string& name, std::vector<int64_t> shape,
      std::optional<v1::Partitioner> partitioner = std::nullopt) {
    VariableScope scope;
    GetVariableOptions options;
    options.shape = std::move(shape);
    options.dtype = v1::DT_FLOAT;
    options.initializer = v1::Initializer();
    options.initializer->set_kind(v1::Initializer::ZEROS);
    options.partitioner = std::move(partitioner);
    return GetVariable(client_, scope, name, options);
  }

  // The shards that hold `name`, asked one by one.
  std::vector<int> Holders(const std::string& name) {
    std::vector<int> out;
    for (int i = 0; i < 3; ++i) {
      if (shards_[i]->NewClient()->Stat(name).ok()) out.push_back(i);
    }
    return out;
  }

  std::vector<std::unique_ptr<TestServer>> shards_;
  std::shared_ptr<Client> client_;
};

TEST_F(ClusterTest, EachVariableLivesOnItsShard) {
  std::set<int> used;
  for (int i = 0; i < 12; ++i) {
    const std::string name = absl::StrCat("s/v", i);
    ASSERT_THAT(Create(name, {2}).status(), IsOk());
    EXPECT_THAT(Holders(name), ElementsAre(ShardOf(name, 3)));
    used.insert(ShardOf(name, 3));
  }
  EXPECT_EQ(used.size(), 3u);
  // Another client of the same cluster finds them.
  EXPECT_THAT(Client::Connect(Addresses({0, 1, 2}))->Stat("s/v7").status(),
              IsOk());
}

TEST_F(ClusterTest, EmbeddingLookupsOfKeysOnSomeShardsOnly) {
  v1::GetEmbeddingVariableRequest emb;
  emb.set_name("emb");
  emb.set_mode(v1::CREATE);
  emb.set_embedding_dim(2);
  emb.mutable_initializer()->set_kind(v1::Initializer::ONES);
  ASSERT_THAT(client_->GetEmbeddingVariable(emb).status(), IsOk());
  // One key (its shard alone is called, or shard 0 with it), then none.
  for (int shard = 0; shard < 3; ++shard) {
    int64_t key = 0;
    while (EmbeddingShardOf(key, 3) != shard) ++key;
    absl::StatusOr<Tensor> rows = client_->EmbeddingLookup(
        "emb", Tensor::FromVector<int64_t>(v1::DT_INT64, {1}, {key}));
    ASSERT_THAT(rows.status(), IsOk()) << "shard " << shard;
    EXPECT_EQ(rows->dims(), (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(rows->bytes(),
              Tensor::FromVector<float>(v1::DT_FLOAT, {1, 2}, {1, 1}).bytes());
  }
  absl::StatusOr<Tensor> none = client_->EmbeddingLookup(
      "emb", Tensor::FromVector<int64_t>(v1::DT_INT64, {0}, {}));
  ASSERT_THAT(none.status(), IsOk());
  EXPECT_EQ(none->dims(), (std::vector<int64_t>{0, 2}));
}

TEST_F(ClusterTest, ShardsListedInAnotherOrderAreRefusedBeforeAnyCall) {
  const std::string order = TestShardList(3);
  const std::string cluster =
      absl::StrCat("of cluster test-cluster (shards ", order, ")");
  // As a worker that swapped two shards would: its names would land on
  // other shards than every other worker's.
  std::unique_ptr<Client> swapped = Client::Connect(Addresses({1, 0, 2}));
  const std::string mismatch = absl::StrCat(
      "Shard list mismatch: ", shards_[1]->address(), " is shard 1 of 3 ",
      cluster,
      ", but this client lists it as shard 0 of 3. Give every worker the "
      "shards in the cluster's order: ",
      order);
  EXPECT_THAT(swapped->CheckCluster(),
              StatusIs(absl::StatusCode::kFailedPrecondition, mismatch));
  v1::GetVariableRequest create;
  create.set_name("w");
  create.set_mode(v1::AUTO_REUSE);
  create.set_dtype(v1::DT_FLOAT);
  create.mutable_shape()->add_dims(1);
  EXPECT_THAT(swapped->GetVariable(create).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, mismatch));
  EXPECT_THAT(swapped->ListVariables({}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, mismatch));
  EXPECT_THAT(swapped->GetServerInfo().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, mismatch));
  // Fewer shards than the cluster has.
  EXPECT_THAT(
      Client::Connect(Addresses({0, 1}))->Stat("w").status(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               absl::StrCat("Shard list mismatch: ", shards_[0]->address(),
                            " is shard 0 of 3 ", cluster,
                            ", but this client lists it as shard 0 of 2. Give "
                            "every worker the shards in the cluster's order: ",
                            order)));
  // Nothing was created; the cluster's order works.
  EXPECT_THAT(client_->CheckCluster(), IsOk());
  absl::StatusOr<v1::ServerInfo> info = client_->GetServerInfo();
  ASSERT_THAT(info.status(), IsOk());
  EXPECT_EQ(info->variable_count(), 0);
  EXPECT_THAT(client_->GetVariable(create).status(), IsOk());
}

TEST_F(ClusterTest, OneAddressReachesAnyShardWhateverItsPlace) {
  // An operator's access to one shard (e.g. to back it up).
  absl::StatusOr<v1::ServerInfo> info =
      shards_[2]->NewClient()->GetServerInfo();
  ASSERT_THAT(info.status(), IsOk());
  EXPECT_EQ(info->cluster().cluster_id(), "test-cluster");
  EXPECT_EQ(info->cluster().shard_index(), 2);
  EXPECT_EQ(info->cluster().shard_count(), 3);
  EXPECT_EQ(absl::StrJoin(info->cluster().shards(), ","), TestShardList(3));
  EXPECT_THAT(shards_[2]->NewClient()->CheckCluster(), IsOk());
}

TEST(ClusterCheck, StandaloneServersAndShardsOfAnotherClusterAreRefused) {
  TestServer a, b;
  EXPECT_THAT(
      Client::Connect(absl::StrCat(a.address(), ",", b.address()))
          ->CheckCluster(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               absl::StrCat("Shard list mismatch: ", a.address(),
                            " is a standalone server (not a shard of a "
                            "cluster), but this client lists it as shard 0 of "
                            "2. Start every shard with the same --cluster "
                            "list and its own --shard-index (or a ps task's "
                            "TF_CONFIG), and give every worker the shards in "
                            "that order")));
  TestServer x(TestShardOptions(0, 2));
  server::ServerOptions other = TestShardOptions(1, 2);
  other.cluster->set_cluster_id("other");
  TestServer y(other);
  const std::string shards = TestShardList(2);
  EXPECT_THAT(
      Client::Connect(absl::StrCat(x.address(), ",", y.address()))
          ->CheckCluster(),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               absl::StrCat("Shard list mismatch: ", y.address(),
                            " is shard 1 of 2 of cluster other (shards ",
                            shards, "), but ", x.address(),
                            " is shard 0 of 2 of cluster test-cluster "
                            "(shards ",
                            shards,
                            "). Give every worker the shards of one cluster, "
                            "in its order")));
}

// A get_variable of `name` [12, 2] in `parts` parts, random values.
v1::GetVariableRequest Partitioned(const std::string& name, v1::ReuseMode mode,
                                   int parts = 6, int64_t rows = 12) {
  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(mode);
  request.set_dtype(v1::DT_FLOAT);
  request.mutable_shape()->add_dims(rows);
  request.mutable_shape()->add_dims(2);
  request.mutable_initializer()->set_kind(v1::Initializer::RANDOM_NORMAL);
  request.mutable_partitioner()->mutable_fixed_size()->set_num_shards(parts);
  return request;
}

// The names of the parts in `response`.
std::vector<std::string> PartNames(const v1::GetVariableResponse& response) {
  std::vector<std::string> names;
  for (const v1::VariableInfo& part : response.parts()) {
    names.push_back(part.name());
  }
  return names;
}

TEST(ShardOfTest, PartsSpreadFromTheirVariablesShard) {
  for (const char* name : {"emb", "s/w", "x"}) {
    const int home = ShardOf(name, 3);
    for (int i = 0; i < 7; ++i) {
      const std::string part = absl::StrCat(name, "/part_", i);
      EXPECT_EQ(ShardOf(part, 3), (home + i) % 3) << part;
      EXPECT_EQ(ShardOf(absl::StrCat(part, "/Adam_1"), 3), (home + i) % 3);
    }
    // Any number of digits.
    EXPECT_EQ(ShardOf(absl::StrCat(name, "/part_100000000000000000001"), 3),
              (home + 2) % 3);
    EXPECT_EQ(ShardOf(absl::StrCat(name, "/part_5"), 1), 0);
  }
}

TEST_F(ClusterTest, PartitionedVariablesSpreadWithTheirSlots) {
  absl::StatusOr<v1::GetVariableResponse> created =
      client_->GetVariable(Partitioned("emb", v1::CREATE));
  ASSERT_THAT(created.status(), IsOk());
  EXPECT_TRUE(created->created());
  EXPECT_THAT(PartNames(*created),
              ElementsAre("emb/part_0", "emb/part_1", "emb/part_2",
                          "emb/part_3", "emb/part_4", "emb/part_5"));
  EXPECT_EQ(created->variable().name(), "emb");
  EXPECT_THAT(created->variable().shape().dims(), ElementsAre(12, 2));
  const int home = ShardOf("emb", 3);
  for (int i = 0; i < 6; ++i) {
    const std::string part = absl::StrCat("emb/part_", i);
    EXPECT_THAT(Holders(part), ElementsAre((home + i) % 3)) << part;
  }
  // Two parts on every shard, by each shard's own count.
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::ServerInfo> info =
        shards_[i]->NewClient()->GetServerInfo();
    ASSERT_THAT(info.status(), IsOk());
    EXPECT_EQ(info->variable_count(), 2) << "shard " << i;
  }
  // The values are the ones one server creates for the same seed.
  TestServer single;
  v1::GetVariableRequest same = Partitioned("emb", v1::CREATE);
  *same.mutable_initializer() = created->variable().initializer();
  ASSERT_THAT(single.NewClient()->GetVariable(same).status(), IsOk());
  for (int i = 0; i < 6; ++i) {
    const std::string part = absl::StrCat("emb/part_", i);
    absl::StatusOr<ReadResult> here = client_->Read(part);
    absl::StatusOr<ReadResult> there = single.NewClient()->Read(part);
    ASSERT_THAT(here.status(), IsOk());
    ASSERT_THAT(there.status(), IsOk());
    EXPECT_EQ(here->value.bytes(), there->value.bytes()) << part;
  }

  // A listing has every part once.
  std::vector<std::string> listed;
  v1::ListVariablesRequest list;
  list.set_scope("emb");
  ASSERT_THAT(client_->ForEachPage(list,
                                   [&](v1::ListVariablesResponse& page) {
                                     for (const auto& e : page.entries()) {
                                       listed.push_back(e.name());
                                     }
                                     return absl::OkStatus();
                                   }),
              IsOk());
  EXPECT_THAT(listed, ElementsAre("emb/part_0", "emb/part_1", "emb/part_2",
                                  "emb/part_3", "emb/part_4", "emb/part_5"));
  // A step on two parts: each slot on its part's shard.
  v1::BatchUpdateRequest step;
  for (const char* part : {"emb/part_1", "emb/part_3"}) {
    v1::Update* update = step.add_updates();
    update->set_name(part);
    update->mutable_apply_gradient()->mutable_optimizer()->set_learning_rate(1);
    update->mutable_apply_gradient()->mutable_optimizer()->mutable_adagrad();
    TensorToProto(Tensor(v1::DT_FLOAT, {2, 2}),
                  update->mutable_apply_gradient()->mutable_gradient());
  }
  ASSERT_THAT(client_->BatchUpdate(step).status(), IsOk());
  EXPECT_THAT(Holders("emb/part_1/Adagrad"), ElementsAre((home + 1) % 3));
  EXPECT_THAT(Holders("emb/part_3/Adagrad"), ElementsAre(home));

  // Reuse from another client: every part, the whole's errors.
  std::shared_ptr<Client> other = Client::Connect(Addresses({0, 1, 2}));
  v1::GetVariableRequest reuse = Partitioned("emb", v1::REUSE);
  reuse.clear_partitioner();
  reuse.clear_shape();
  absl::StatusOr<v1::GetVariableResponse> reused = other->GetVariable(reuse);
  ASSERT_THAT(reused.status(), IsOk());
  EXPECT_FALSE(reused->created());
  EXPECT_EQ(PartNames(*reused), PartNames(*created));
  EXPECT_THAT(
      other->GetVariable(Partitioned("emb", v1::AUTO_REUSE, 6, 10)).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Trying to reuse partitioned variable emb, but "
               "specified shape (10, 2) and found shape (12, 2)."));
  EXPECT_THAT(
      other->GetVariable(Partitioned("emb", v1::AUTO_REUSE, 4)).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Trying to reuse partitioned variable emb, but "
               "specified partitions [4, 1] and found partitions "
               "[6, 1]."));
  EXPECT_THAT(other->GetVariable(Partitioned("emb", v1::CREATE)).status(),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "Partitioned variable with name emb already exists. "
                       "Did you mean to set reuse=True or "
                       "reuse=tf.AUTO_REUSE in VarScope?"));
  EXPECT_THAT(other->GetVariable(Partitioned("nothing", v1::REUSE)).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::StartsWith(
                           "PartitionedVariable nothing does not exist, or "
                           "was not created with tf.get_variable(). Did you "
                           "mean to set reuse=False or reuse=tf.AUTO_REUSE in "
                           "VarScope?")));

  // A part goes with its whole only, as on one server.
  for (const bool recursive : {false, true}) {
    EXPECT_THAT(client_->Delete("emb/part_1", recursive).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         "Variable emb/part_1 is part 1 of the partitioned "
                         "variable emb (6 parts); delete the whole: varscope "
                         "rm -r emb"));
  }
  // A recursive delete takes every part and slot.
  EXPECT_THAT(client_->Delete("emb", /*recursive=*/true), IsOkAndHolds(8));
  EXPECT_THAT(other->GetVariable(reuse).status(),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ClusterTest, ConcurrentCreatorsOfAPartitionedVariableMakeOne) {
  constexpr int kWorkers = 8;
  std::vector<absl::StatusOr<v1::GetVariableResponse>> replies(
      kWorkers, absl::UnknownError("not run"));
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      ClientOptions options = ::varscope::testing::TestClientOptions();
      options.own_connection = true;
      replies[w] = Client::Connect(Addresses({0, 1, 2}), options)
                       ->GetVariable(Partitioned("emb", v1::AUTO_REUSE));
    });
  }
  for (std::thread& worker : workers) worker.join();
  int created = 0;
  for (const auto& reply : replies) {
    ASSERT_THAT(reply.status(), IsOk());
    created += reply->created();
    EXPECT_EQ(PartNames(*reply), PartNames(*replies[0]));
    EXPECT_EQ(reply->variable().initializer().seed(),
              replies[0]->variable().initializer().seed());
  }
  EXPECT_EQ(created, 1);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::ServerInfo> info =
        shards_[i]->NewClient()->GetServerInfo();
    ASSERT_THAT(info.status(), IsOk());
    EXPECT_EQ(info->variable_count(), 2) << "shard " << i;
  }
}

TEST_F(ClusterTest, ACreationCutShortByADownShardIsCompletedLater) {
  const int home = ShardOf("emb", 3);
  const int down = (home + 1) % 3;  // holds parts 1 and 4
  ClientOptions options = ::varscope::testing::TestClientOptions();
  options.retry_timeout = absl::Milliseconds(300);
  std::shared_ptr<Client> impatient =
      Client::Connect(Addresses({0, 1, 2}), options);
  ASSERT_THAT(impatient->CheckCluster(), IsOk());
  const std::string down_address = shards_[down]->address();
  shards_[down]->Stop();
  EXPECT_THAT(
      impatient->GetVariable(Partitioned("emb", v1::AUTO_REUSE)).status(),
      StatusIs(absl::StatusCode::kUnavailable,
               ::testing::StartsWith(
                   absl::StrCat("GetVariable of emb: shard ", down, " of 3 at ",
                                down_address, " unavailable after "))));
  ASSERT_THAT(shards_[down]->Restart(), IsOk());
  // The home shard's parts are there, not the down shard's.
  EXPECT_THAT(Holders("emb/part_0"), ElementsAre(home));
  EXPECT_THAT(Holders("emb/part_1"), ::testing::IsEmpty());
  std::shared_ptr<Client> later = Client::Connect(Addresses({0, 1, 2}));
  // A CREATE finds the variable; a REUSE completes it.
  EXPECT_THAT(later->GetVariable(Partitioned("emb", v1::CREATE)).status(),
              StatusIs(absl::StatusCode::kAlreadyExists));
  v1::GetVariableRequest reuse = Partitioned("emb", v1::REUSE);
  reuse.clear_partitioner();
  absl::StatusOr<v1::GetVariableResponse> completed = later->GetVariable(reuse);
  ASSERT_THAT(completed.status(), IsOk());
  EXPECT_FALSE(completed->created());
  EXPECT_THAT(PartNames(*completed),
              ElementsAre("emb/part_0", "emb/part_1", "emb/part_2",
                          "emb/part_3", "emb/part_4", "emb/part_5"));
  EXPECT_THAT(Holders("emb/part_4"), ElementsAre(down));
  absl::StatusOr<ReadResult> part4 = later->Read("emb/part_4");
  ASSERT_THAT(part4.status(), IsOk());
  EXPECT_THAT(part4->value.dims(), ElementsAre(2, 2));
}

TEST_F(ClusterTest, BatchesSplitByShardAndComeBackInOrder) {
  const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f"};
  for (const std::string& name : names)
    ASSERT_THAT(Create(name, {1}).status(), IsOk());
  v1::BatchUpdateRequest batch;
  batch.set_return_values(true);
  for (size_t i = 0; i < names.size(); ++i) {
    v1::Update* update = batch.add_updates();
    update->set_name(names[i]);
    TensorToProto(
        Tensor::FromVector<float>(v1::DT_FLOAT, {1}, {static_cast<float>(i)}),
        update->mutable_assign_add());
  }
  absl::StatusOr<v1::BatchUpdateResponse> done = client_->BatchUpdate(batch);
  ASSERT_THAT(done.status(), IsOk());
  ASSERT_EQ(done->values_size(), 6);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(done->versions(i), 2);
    EXPECT_EQ(
        done->values(i).content(),
        Tensor::FromVector<float>(v1::DT_FLOAT, {1}, {static_cast<float>(i)})
            .bytes());
  }
  v1::BatchReadRequest read;
  for (const char* name : {"f", "a", "c"}) read.add_names(name);
  absl::StatusOr<v1::BatchReadResponse> values = client_->BatchRead(read);
  ASSERT_THAT(values.status(), IsOk());
  std::vector<std::string> got;
  for (const auto& entry : values->entries()) got.push_back(entry.name());
  EXPECT_THAT(got, ElementsAre("a", "c", "f"));
  read.clear_names();
  values = client_->BatchRead(read);  // the root scope: every shard
  ASSERT_THAT(values.status(), IsOk());
  got.clear();
  for (const auto& entry : values->entries()) got.push_back(entry.name());
  EXPECT_THAT(got, ElementsAreArray(names));
}

TEST_F(ClusterTest, ListingsMergeShardsPageByPage) {
  // Variables and scopes spread over the shards, a variable next to a scope
  // of the same name, and a reference server holding them all.
  TestServer reference;
  std::shared_ptr<Client> one = reference.NewClient();
  std::vector<std::string> names = {"w", "w/Momentum", "x"};
  for (int i = 0; i < 9; ++i) {
    names.push_back(absl::StrCat("s", i % 4, "/v", i));
    names.push_back(absl::StrCat("t/u", i));
  }
  for (const std::string& name : names) {
    ASSERT_THAT(Create(name, {1}).status(), IsOk());
    VariableScope scope;
    GetVariableOptions options;
    options.shape = std::vector<int64_t>{1};
    options.dtype = v1::DT_FLOAT;
    ASSERT_THAT(GetVariable(one, scope, name, options).status(), IsOk());
  }
  auto list_all = [](Client& client, const std::string& scope, bool recursive,
                     int page_size) {
    std::vector<std::string> out;
    v1::ListVariablesRequest request;
    request.set_scope(scope);
    request.set_recursive(recursive);
    request.set_page_size(page_size);
    EXPECT_THAT(
        client.ForEachPage(request,
                           [&](v1::ListVariablesResponse& page) {
                             EXPECT_LE(page.entries_size(), page_size);
                             for (const auto& entry : page.entries()) {
                               out.push_back(absl::StrCat(
                                   entry.name(), entry.is_scope() ? "/" : ""));
                             }
                             return absl::OkStatus();
                           }),
        IsOk());
    return out;
  };
  for (const bool recursive : {true, false}) {
    for (const std::string scope : {"", "t"}) {
      for (const int page_size : {1, 2, 3, 5, 100}) {
        EXPECT_EQ(list_all(*client_, scope, recursive, page_size),
                  list_all(*one, scope, recursive, 100))
            << "scope '" << scope << "' recursive " << recursive
            << " page_size " << page_size;
      }
    }
  }
}

TEST_F(ClusterTest, DeletesRenamesAndInfo) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_THAT(Create(absl::StrCat("d/v", i), {1}).status(), IsOk());
  }
  ASSERT_THAT(Create("keep", {1}).status(), IsOk());
  absl::StatusOr<v1::ServerInfo> info = client_->GetServerInfo();
  ASSERT_THAT(info.status(), IsOk());
  EXPECT_EQ(info->variable_count(), 7);
  EXPECT_THAT(client_->Delete("d", /*recursive=*/true), IsOkAndHolds(6));
  EXPECT_THAT(client_->Delete("d", /*recursive=*/true).status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(client_->Delete("keep", /*recursive=*/false), IsOkAndHolds(1));
  EXPECT_THAT(client_->Rename("a", "b").status(),
              StatusIs(absl::StatusCode::kNotFound,
                       "Nothing named a or under a/ exists."));
}

TEST_F(ClusterTest, RenamesMoveVariablesToTheShardsOfTheirNewNames) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_THAT(Create(absl::StrCat("old/v", i), {2}).status(), IsOk());
    ASSERT_THAT(client_
                    ->AssignAdd(absl::StrCat("old/v", i),
                                Tensor::FromVector<float>(v1::DT_FLOAT, {2},
                                                          {1.0f * i, 2}))
                    .status(),
                IsOk());
  }
  ASSERT_THAT(client_->GetVariable(Partitioned("old/emb", v1::CREATE)).status(),
              IsOk());
  ASSERT_THAT(Create("taken/v3", {1}).status(), IsOk());
  std::map<std::string, std::pair<std::string, int64_t>> before;
  for (const char* leaf :
       {"v0", "v1", "v2", "v3", "v4", "v5", "emb/part_0", "emb/part_5"}) {
    absl::StatusOr<ReadResult> read = client_->Read(absl::StrCat("old/", leaf));
    ASSERT_THAT(read.status(), IsOk());
    before[leaf] = {std::string(read->value.bytes()), read->version};
  }
  // A new name taken: nothing moves.
  EXPECT_THAT(client_->Rename("old", "taken"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "Cannot rename old/v3 to taken/v3: Variable taken/v3 "
                       "already exists"));
  EXPECT_THAT(client_->Rename("old/emb/part_2", "x"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "Variable old/emb/part_2 is part 2 of the partitioned "
                       "variable old/emb (6 parts); rename the whole: varscope "
                       "mv old/emb NEW_NAME"));
  EXPECT_THAT(client_->Rename("old", "old/x").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Cannot rename old to old/x: one is the other or lies "
                       "inside it"));
  EXPECT_THAT(client_->Rename("old", "new"), IsOkAndHolds(12));
  for (const auto& [leaf, held] : before) {
    const std::string name = absl::StrCat("new/", leaf);
    absl::StatusOr<ReadResult> read = client_->Read(name);
    ASSERT_THAT(read.status(), IsOk()) << name;
    EXPECT_EQ(read->value.bytes(), held.first) << name;
    EXPECT_EQ(read->version, held.second) << name;
    EXPECT_THAT(Holders(name), ElementsAre(ShardOf(name, 3))) << name;
    EXPECT_THAT(Holders(absl::StrCat("old/", leaf)), ElementsAre()) << name;
  }
  // The renamed parts make the whole under its new name.
  v1::GetVariableRequest reuse = Partitioned("new/emb", v1::REUSE);
  absl::StatusOr<v1::GetVariableResponse> whole = client_->GetVariable(reuse);
  ASSERT_THAT(whole.status(), IsOk());
  EXPECT_EQ(whole->parts_size(), 6);
}

TEST_F(ClusterTest, NotFoundNamesWhereTheVariableIsOnAnyShard) {
  // The same leaf in scopes that live on other shards than the name asked.
  std::vector<std::string> elsewhere;
  for (int i = 0; elsewhere.size() < 2; ++i) {
    const std::string name = absl::StrCat("scope", i, "/weights");
    if (ShardOf(name, 3) != ShardOf("my_scope/weights", 3)) {
      elsewhere.push_back(name);
    }
  }
  for (const std::string& name : elsewhere) {
    ASSERT_THAT(Create(name, {2}).status(), IsOk());
  }
  VariableScope scope;
  scope.reuse = Reuse::kTrue;
  EXPECT_THAT(
      GetVariable(client_, scope, "my_scope/weights", {}).status(),
      StatusIs(absl::StatusCode::kNotFound,
               absl::StrCat("Variable my_scope/weights does not exist, or was "
                            "not created with tf.get_variable(). Did you mean "
                            "to set reuse=tf.AUTO_REUSE in VarScope? "
                            "Variables named 'weights' exist at: ",
                            absl::StrJoin(elsewhere, ", "))));
  EXPECT_THAT(client_->Read("my_scope/weights").status(),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::EndsWith(absl::StrJoin(elsewhere, ", "))));
}

// Synchronous replicas on a cluster whose variables lie on other shards
// than the global step (shard 1, pinned above): "a" on shard 0, "w" on 1,
// "b" on 2, and the parts of "emb" (4 rows each) on all three.
class SyncClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(ShardOf("global_step", 3), 1);
    ASSERT_THAT(GetOrCreateGlobalStep(client_).status(), IsOk());
    a_ = NameOn(0);
    b_ = NameOn(2);
    for (const std::string& name : {a_, std::string("w"), b_}) {
      ASSERT_THAT(Create(name, {2}).status(), IsOk());
    }
    v1::Partitioner three;
    three.mutable_fixed_size()->set_num_shards(3);
    ASSERT_THAT(Create("emb", {12, 2}, three).status(), IsOk());
    std::set<int> spread;
    for (const std::string& part : Parts()) {
      spread.insert(ShardOf(part, 3));
    }
    ASSERT_EQ(spread.size(), 3u);
  }

  static std::string NameOn(int shard) {
    std::string name;
    for (int i = 0; name.empty() || ShardOf(name, 3) != shard; ++i) {
      name = absl::StrCat("v", i);
    }
    return name;
  }
  static std::vector<std::string> Parts() {
    return {"emb/part_0", "emb/part_1", "emb/part_2"};
  }

  // A contribution at `step`: SGD (learning rate 1) gradients `grad` for
  // every variable of `names` (all [2]).
  static v1::SyncApplyRequest Contribution(
      int64_t step, float grad, int replicas,
      const std::vector<std::string>& names) {
    v1::SyncApplyRequest request;
    request.set_accumulator("sync");
    request.set_step(step);
    request.set_replicas_to_aggregate(replicas);
    for (const std::string& name : names) {
      v1::Update* update = request.add_updates();
      update->set_name(name);
      v1::ApplyGradient* apply = update->mutable_apply_gradient();
      apply->mutable_optimizer()->set_learning_rate(1);
      apply->mutable_optimizer()->mutable_gradient_descent();
      TensorToProto(Tensor::FromVector<float>(v1::DT_FLOAT, {2}, {grad, grad}),
                    apply->mutable_gradient());
    }
    return request;
  }

  std::vector<float> Value(const std::string& name) {
    absl::StatusOr<ReadResult> read = client_->Read(name);
    EXPECT_THAT(read.status(), IsOk()) << name;
    if (!read.ok()) return {};
    auto flat = read->value.flat<float>();
    return {flat.begin(), flat.end()};
  }
  int64_t GlobalStep() {
    absl::StatusOr<ReadResult> read = client_->Read("global_step");
    EXPECT_THAT(read.status(), IsOk());
    return read.ok() ? read->value.flat<int64_t>()[0] : -1;
  }

  std::string a_, b_;
};

TEST_F(SyncClusterTest, WorkerProcessesTrainVariablesOnEveryShard) {
  constexpr int kWorkers = 4;
  constexpr int kSteps = 5;
  std::vector<std::unique_ptr<::varscope::testing::ChildProcess>> workers;
  for (int i = 0; i < kWorkers; ++i) {
    std::vector<std::string> argv = {::varscope::testing::TestWorkerPath(),
                                     "sync",
                                     Addresses({0, 1, 2}),
                                     absl::StrCat(kSteps),
                                     absl::StrCat(i),
                                     absl::StrCat(kWorkers),
                                     "120",
                                     a_,
                                     "w",
                                     b_};
    for (const std::string& part : Parts()) argv.push_back(part);
    auto worker =
        ::varscope::testing::ChildProcess::Start(argv, /*capture_stderr=*/true);
    ASSERT_THAT(worker.status(), IsOk());
    workers.push_back(*std::move(worker));
  }
  // Every step was contributed by every worker and applied by one.
  std::map<std::string, int> outcomes;
  for (auto& worker : workers) {
    const std::vector<std::string> lines = worker->ReadLines();
    EXPECT_EQ(worker->Wait(), 0) << absl::StrJoin(lines, "\n");
    ASSERT_EQ(lines.size(), kSteps + 1u) << absl::StrJoin(lines, "\n");
    EXPECT_EQ(lines.back(), "done");
    for (int k = 0; k < kSteps; ++k) {
      const std::vector<std::string> words = absl::StrSplit(lines[k], ' ');
      ASSERT_EQ(words.size(), 3u) << lines[k];
      EXPECT_EQ(words[1], absl::StrCat(k));
      ++outcomes[words[2]];
    }
  }
  EXPECT_EQ(outcomes["APPLIED"], kSteps);
  EXPECT_EQ(outcomes["ACCUMULATED"], (kWorkers - 1) * kSteps);
  EXPECT_EQ(GlobalStep(), kSteps);
  // Worker i sent i + 1: dense variables took the mean, 2.5, each step;
  // row i of each part only worker i's gradient.
  for (const std::string& name : {a_, std::string("w"), b_}) {
    EXPECT_THAT(Value(name), ElementsAre(-12.5, -12.5)) << name;
  }
  for (const std::string& part : Parts()) {
    EXPECT_THAT(Value(part), ElementsAre(-5, -5, -10, -10, -15, -15, -20, -20))
        << part;
  }

  // A straggler's contribution for step 0 is dropped on every shard.
  std::vector<std::string> names = {a_, "w", b_};
  absl::StatusOr<v1::SyncApplyResponse> late =
      client_->SyncApply(Contribution(0, 100, kWorkers, names));
  ASSERT_THAT(late.status(), IsOk());
  EXPECT_EQ(late->outcome(), v1::SyncApplyResponse::STALE);
  EXPECT_EQ(late->global_step(), kSteps);
  EXPECT_EQ(late->stale_dropped(), 1);
  for (const std::string& name : names) {
    EXPECT_THAT(Value(name), ElementsAre(-12.5, -12.5)) << name;
  }
  EXPECT_EQ(GlobalStep(), kSteps);
}

TEST_F(SyncClusterTest, RetriedContributionCountsOnceOnEveryShard) {
  // Every shard loses its reply once: the client retries each part under
  // the contribution's id.
  for (auto& shard : shards_)
    shard->ServiceForTest().DropUpdateRepliesForTest(1);
  const std::vector<std::string> names = {a_, "w", b_};
  v1::SyncApplyRequest request = Contribution(0, 2, 2, names);
  request.mutable_id()->set_client_id("retrying-worker");
  request.mutable_id()->set_sequence(1);
  for (int attempt = 0; attempt < 2; ++attempt) {
    // The second time, as a worker sends a contribution again after an
    // error.
    absl::StatusOr<v1::SyncApplyResponse> counted = client_->SyncApply(request);
    ASSERT_THAT(counted.status(), IsOk());
    EXPECT_TRUE(counted->duplicate());
    EXPECT_EQ(counted->outcome(), v1::SyncApplyResponse::ACCUMULATED);
    EXPECT_EQ(counted->accumulated(), 1);
  }
  absl::StatusOr<v1::SyncApplyResponse> second =
      Client::Connect(Addresses({0, 1, 2}))
          ->SyncApply(Contribution(0, 4, 2, names));
  ASSERT_THAT(second.status(), IsOk());
  EXPECT_EQ(second->outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_FALSE(second->duplicate());
  for (const std::string& name : names) {
    EXPECT_THAT(Value(name), ElementsAre(-3, -3)) << name;
  }
  EXPECT_EQ(GlobalStep(), 1);
}

TEST_F(SyncClusterTest, GlobalStepWaitsForAShardThatLostItsContributions) {
  const std::vector<std::string> names = {a_, "w"};
  std::shared_ptr<Client> first = Client::Connect(Addresses({0, 1, 2}));
  absl::StatusOr<v1::SyncApplyResponse> r =
      first->SyncApply(Contribution(0, 2, 2, names));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::ACCUMULATED);
  // Shard 0 restarts (on a new port): it forgets the contribution.
  ASSERT_THAT(shards_[0]->Restart(), IsOk());
  client_ = Client::Connect(Addresses({0, 1, 2}));
  std::shared_ptr<Client> second = Client::Connect(Addresses({0, 1, 2}));
  r = second->SyncApply(Contribution(0, 4, 2, names));
  ASSERT_THAT(r.status(), IsOk());
  // Two contributions reached the global step's shard, but shard 0 has one
  // of two: the step waits.
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::ACCUMULATED);
  EXPECT_EQ(r->accumulated(), 2);
  EXPECT_EQ(GlobalStep(), 0);
  EXPECT_THAT(Value(a_), ElementsAre(0, 0));
  EXPECT_THAT(Value("w"), ElementsAre(0, 0));
  // The first worker, having waited in vain, contributes again: shard 0
  // applies the step (with the gradients it has), then the global step's
  // shard (with the first two it counted).
  first = Client::Connect(Addresses({0, 1, 2}));
  r = first->SyncApply(Contribution(0, 6, 2, names));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_EQ(GlobalStep(), 1);
  EXPECT_THAT(Value(a_), ElementsAre(-5, -5));
  EXPECT_THAT(Value("w"), ElementsAre(-3, -3));
}

TEST_F(SyncClusterTest, ContributionsSpanningOtherShardsAreRefused) {
  ASSERT_THAT(client_->SyncApply(Contribution(0, 2, 2, {a_, "w"})).status(),
              IsOk());
  // Another worker's contribution also names b (on shard 2): shard 0 sees
  // that it spans other shards than the step's first one.
  std::shared_ptr<Client> other = Client::Connect(Addresses({0, 1, 2}));
  EXPECT_THAT(
      other->SyncApply(Contribution(0, 4, 2, {a_, "w", b_})).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Every contribution to a step must span the same shards: "
               "this step's variables are also on shards [0], the "
               "contribution's on [0, 2]"));
  EXPECT_THAT(Value(a_), ElementsAre(0, 0));
  EXPECT_EQ(GlobalStep(), 0);
  // Nothing of it was counted on shard 0 or the global step's shard.
  absl::StatusOr<v1::SyncApplyResponse> r =
      other->SyncApply(Contribution(0, 4, 2, {a_, "w"}));
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->outcome(), v1::SyncApplyResponse::APPLIED);
  EXPECT_THAT(Value(a_), ElementsAre(-3, -3));
  EXPECT_THAT(Value("w"), ElementsAre(-3, -3));
  EXPECT_THAT(Value(b_), ElementsAre(0, 0));
  EXPECT_EQ(GlobalStep(), 1);
}

}  // namespace
}  // namespace varscope
