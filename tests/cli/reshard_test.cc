// `varscope reshard`: a cluster of in-process shards on port 0 (their
// identities recorded with their real addresses, so that clients can follow
// the new list), re-sharded 2 -> 3 -> 2.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
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
#include "varscope/v1/variable_service.grpc.pb.h"

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

// A stored row of an embedding variable, with its slots by name.
struct StoredRow {
  std::string values;
  int64_t frequency = 0;
  int64_t last_step = 0;
  std::map<std::string, std::string> slots;
  bool operator==(const StoredRow&) const = default;
};

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

  // The rows of embedding variable "emb" on shards `order`, checking that
  // each is on the shard its key maps to.
  std::map<int64_t, StoredRow> EmbeddingPlaced(const std::vector<int>& order);

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

// Every stored row of embedding variable `name` on the server of `client`
// (asked alone), by key.
std::map<int64_t, StoredRow> StoredRows(Client& client,
                                        const std::string& name) {
  std::map<int64_t, StoredRow> rows;
  v1::EmbeddingExportRequest request;
  request.set_name(name);
  request.set_page_size(7);  // several pages
  request.set_with_slots(true);
  EXPECT_THAT(
      client.ForEachEmbeddingPage(
          request,
          [&](v1::EmbeddingExportResponse& page) -> absl::Status {
            VS_ASSIGN_OR_RETURN(const Tensor keys,
                                TensorFromProto(page.mutable_keys()));
            VS_ASSIGN_OR_RETURN(const Tensor values,
                                TensorFromProto(page.mutable_values()));
            VS_ASSIGN_OR_RETURN(const Tensor freqs,
                                TensorFromProto(page.mutable_frequencies()));
            VS_ASSIGN_OR_RETURN(const Tensor steps,
                                TensorFromProto(page.mutable_last_steps()));
            const int64_t n = keys.dims()[0];
            const size_t row = n == 0 ? 0 : values.bytes().size() / n;
            for (int64_t i = 0; i < n; ++i) {
              StoredRow& out = rows[keys.flat<int64_t>()[i]];
              out.values = values.bytes().substr(i * row, row);
              out.frequency = freqs.flat<int64_t>()[i];
              out.last_step = steps.flat<int64_t>()[i];
              for (v1::EmbeddingSlotRows& slot : *page.mutable_slots()) {
                out.slots[slot.name()] =
                    slot.values().content().substr(i * row, row);
              }
            }
            return absl::OkStatus();
          }),
      IsOk());
  return rows;
}

std::map<int64_t, StoredRow> ReshardTest::EmbeddingPlaced(
    const std::vector<int>& order) {
  std::map<int64_t, StoredRow> all;
  for (size_t i = 0; i < order.size(); ++i) {
    for (auto& [key, row] :
         StoredRows(*shards_[order[i]]->NewClient(), "emb")) {
      EXPECT_EQ(EmbeddingShardOf(key, static_cast<int>(order.size())),
                static_cast<int>(i))
          << key << " on shard " << i;
      EXPECT_TRUE(all.emplace(key, row).second) << key << " twice";
    }
  }
  return all;
}

// An int64 vector of keys.
Tensor Keys(const std::vector<int64_t>& keys) {
  return Tensor::FromVector<int64_t>(v1::DT_INT64,
                                     {static_cast<int64_t>(keys.size())}, keys);
}

// Keys [first, first + n).
std::vector<int64_t> KeyRange(int64_t first, int64_t n) {
  std::vector<int64_t> keys;
  for (int64_t k = first; k < first + n; ++k) keys.push_back(k);
  return keys;
}

// Creates the embedding variable "emb" (dim 2, the default initializer).
void CreateEmbedding(Client& client) {
  v1::GetEmbeddingVariableRequest emb;
  emb.set_name("emb");
  emb.set_mode(v1::CREATE);
  emb.set_embedding_dim(2);
  ASSERT_THAT(client.GetEmbeddingVariable(emb).status(), IsOk());
}

// An Adagrad step at `step` on the rows of `keys` of embedding variable
// "emb" (dim 2): gradient (k/100, step).
void TrainEmbedding(Client& client, const std::vector<int64_t>& keys,
                    int64_t step) {
  std::vector<float> grads;
  for (int64_t k : keys) {
    grads.push_back(static_cast<float>(k) / 100);
    grads.push_back(static_cast<float>(step));
  }
  v1::Optimizer adagrad;
  adagrad.set_learning_rate(0.1);
  adagrad.mutable_adagrad();
  ASSERT_THAT(
      client
          .EmbeddingApply("emb", Keys(keys),
                          Floats({static_cast<int64_t>(keys.size()), 2}, grads),
                          adagrad, step)
          .status(),
      IsOk());
}

TEST_F(ReshardTest, EmbeddingRowsMoveWithTheirSlotsAndFrequencies) {
  // The same steps on the cluster and on one reference server: after each
  // re-shard every row (value, Adagrad slot, frequency, last step) is the
  // reference's, on the shard its key maps to.
  TestServer reference_server;
  std::shared_ptr<Client> reference = reference_server.NewClient();
  Form({0, 1});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1}), TestClientOptions());
  ASSERT_THAT(worker->GetVariable(Scalar("dense")).status(), IsOk());
  v1::GetEmbeddingVariableRequest emb;
  emb.set_name("emb");
  emb.set_mode(v1::CREATE);
  emb.set_embedding_dim(2);
  emb.mutable_initializer()->set_kind(v1::Initializer::RANDOM_NORMAL);
  emb.mutable_initializer()->set_seed(11);
  for (Client* client : {worker.get(), reference.get()}) {
    ASSERT_THAT(client->GetEmbeddingVariable(emb).status(), IsOk());
    TrainEmbedding(*client, KeyRange(0, 120), 1);
    TrainEmbedding(*client, KeyRange(50, 40), 2);
    ASSERT_THAT(
        client->EmbeddingLookup("emb", Keys(KeyRange(100, 30)), 3).status(),
        IsOk());
  }
  const std::map<int64_t, StoredRow> before = EmbeddingPlaced({0, 1});
  ASSERT_GE(before.size(), 120u);
  ASSERT_EQ(before.at(60).slots.size(), 1u);
  ASSERT_EQ(before, StoredRows(*reference, "emb"));
  int64_t moving = 0;
  for (const auto& [key, row] : before) {
    moving += EmbeddingShardOf(key, 2) != EmbeddingShardOf(key, 3) ? 1 : 0;
  }

  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(grown.code, 0) << grown.err;
  EXPECT_THAT(grown.out,
              HasSubstr(absl::StrCat("Copied ", moving,
                                     " rows of embedding variable emb to "
                                     "their shards\n")));
  EXPECT_THAT(grown.out,
              HasSubstr(absl::StrCat("; ", moving,
                                     " rows of 1 embedding variable moved\n")));
  EXPECT_EQ(EmbeddingPlaced({0, 1, 2}), before);
  absl::StatusOr<v1::VariableInfo> on_new =
      shards_[2]->NewClient()->Stat("emb");
  ASSERT_THAT(on_new.status(), IsOk());
  EXPECT_EQ(on_new->embedding().embedding_dim(), 2);
  EXPECT_EQ(on_new->initializer().seed(), 11);

  // The worker follows: lookups and updates, by key, on the new shards.
  for (Client* client : {worker.get(), reference.get()}) {
    TrainEmbedding(*client, KeyRange(80, 80), 4);
  }
  const std::map<int64_t, StoredRow> trained = EmbeddingPlaced({0, 1, 2});
  EXPECT_EQ(trained, StoredRows(*reference, "emb"));
  absl::StatusOr<Tensor> looked_up =
      worker->EmbeddingLookup("emb", Keys(KeyRange(0, 200)), 5, true);
  absl::StatusOr<Tensor> expected =
      reference->EmbeddingLookup("emb", Keys(KeyRange(0, 200)), 5, true);
  ASSERT_THAT(looked_up.status(), IsOk());
  ASSERT_THAT(expected.status(), IsOk());
  EXPECT_EQ(looked_up->bytes(), expected->bytes());

  CliResult shrunk = Reshard({0, 1, 2}, {0, 1});
  ASSERT_EQ(shrunk.code, 0) << shrunk.err;
  EXPECT_EQ(EmbeddingPlaced({0, 1}), trained);
  EXPECT_TRUE(On(2).empty());  // the removed shard keeps nothing
  for (Client* client : {worker.get(), reference.get()}) {
    TrainEmbedding(*client, KeyRange(150, 60), 6);
  }
  EXPECT_EQ(EmbeddingPlaced({0, 1}), StoredRows(*reference, "emb"));
  absl::StatusOr<v1::EmbeddingStats> stats = worker->EmbeddingStat("emb");
  absl::StatusOr<v1::EmbeddingStats> one = reference->EmbeddingStat("emb");
  ASSERT_THAT(stats.status(), IsOk());
  ASSERT_THAT(one.status(), IsOk());
  EXPECT_EQ(stats->size(), one->size());
}

TEST_F(ReshardTest, EmbeddingCopiesAnInterruptedRunLeftAreDropped) {
  Form({0, 1});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1}), TestClientOptions());
  CreateEmbedding(*worker);
  TrainEmbedding(*worker, KeyRange(0, 60), 1);
  const std::map<int64_t, StoredRow> expected = EmbeddingPlaced({0, 1});
  // Copies on shard 0 of a row shard 1 holds (stale), and of a key no
  // shard holds any more, which the new list places on shard 0.
  int64_t held = 0;
  while (EmbeddingShardOf(held, 2) != 1) ++held;
  int64_t gone = 1000;
  while (EmbeddingShardOf(gone, 2) != 1 || EmbeddingShardOf(gone, 3) != 0) {
    ++gone;
  }
  ASSERT_THAT(shards_[0]
                  ->NewClient()
                  ->EmbeddingImport("emb", Keys({held, gone}),
                                    Floats({2, 2}, {9, 9, 9, 9}))
                  .status(),
              IsOk());

  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(grown.code, 0) << grown.err;
  EXPECT_EQ(EmbeddingPlaced({0, 1, 2}), expected);
}

TEST_F(ReshardTest, AClientStartedAfterAReshardWithTheOldListFollows) {
  Form({0, 1});
  {
    std::shared_ptr<Client> setup =
        Client::Connect(List({0, 1}), TestClientOptions());
    for (const std::string name : {"a", "b", "c", "d"}) {
      ASSERT_THAT(setup->GetVariable(Scalar(name)).status(), IsOk());
    }
  }
  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(grown.code, 0) << grown.err;

  std::shared_ptr<Client> late =
      Client::Connect(List({0, 1}), TestClientOptions());
  EXPECT_THAT(late->CheckCluster(), IsOk());
  for (const std::string name : {"a", "b", "c", "d"}) {
    ASSERT_THAT(late->AssignAdd(name, Floats({1}, {1})).status(), IsOk());
  }
  std::map<std::string, Held> held = Placed({0, 1, 2});
  for (const std::string name : {"a", "b", "c", "d"}) {
    EXPECT_EQ(held.at(name).version, 2) << name;
  }

  // Lists that are not the re-sharded one keep failing.
  const std::string to = List({0, 1, 2});
  const std::string id = DerivedClusterId(absl::StrSplit(to, ','));
  for (const std::vector<int>& wrong :
       std::vector<std::vector<int>>{{1, 0}, {0, 2}}) {
    EXPECT_THAT(
        Client::Connect(List(wrong), TestClientOptions())->CheckCluster(),
        StatusIs(
            absl::StatusCode::kFailedPrecondition,
            absl::StrCat("Shard list mismatch: ", shards_[wrong[0]]->address(),
                         " is shard ", wrong[0], " of 3 of cluster ", id,
                         " (shards ", to,
                         "), but this client lists it as shard 0 of 2. "
                         "Give every worker the shards in the "
                         "cluster's order: ",
                         to)));
  }

  // After 3 -> 2, a client of the three-shard list follows too (the removed
  // shard names the new cluster), and one of the first list is of the
  // current cluster.
  CliResult shrunk = Reshard({0, 1, 2}, {0, 1});
  ASSERT_EQ(shrunk.code, 0) << shrunk.err;
  std::shared_ptr<Client> three = Client::Connect(to, TestClientOptions());
  EXPECT_THAT(three->AssignAdd("a", Floats({1}, {1})).status(), IsOk());
  std::shared_ptr<Client> two =
      Client::Connect(List({0, 1}), TestClientOptions());
  absl::StatusOr<ReadResult> read = two->Read("a");
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(read->version, 3);
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

TEST_F(ReshardTest, AnEmbeddingStepRetriedAfterTheMoveIsRecognised) {
  Form({0, 1});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1}), TestClientOptions());
  CreateEmbedding(*worker);
  // A key that moves from its old shard to the new one.
  int64_t key = 0;
  while (EmbeddingShardOf(key, 3) != 2) ++key;
  const int home = EmbeddingShardOf(key, 2);
  // An Adagrad step on it with an id, sent to its shard; its answer lost.
  v1::EmbeddingApplyRequest step;
  step.set_name("emb");
  TensorToProto(Keys({key}), step.mutable_keys());
  TensorToProto(Floats({1, 2}, {1, 2}), step.mutable_gradients());
  step.mutable_optimizer()->set_learning_rate(0.1);
  step.mutable_optimizer()->mutable_adagrad();
  step.set_global_step(1);
  step.mutable_id()->set_client_id(worker->client_id());
  step.mutable_id()->set_sequence(1000);
  const auto apply = [&](int shard) -> v1::EmbeddingApplyResponse {
    auto stub = v1::VariableService::NewStub(grpc::CreateChannel(
        shards_[shard]->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    v1::EmbeddingApplyResponse response;
    const grpc::Status status = stub->EmbeddingApply(&context, step, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  };
  EXPECT_FALSE(apply(home).duplicate());
  const std::map<int64_t, StoredRow> trained = EmbeddingPlaced({0, 1});
  ASSERT_EQ(trained.count(key), 1u);

  CliResult grown = Reshard({0, 1}, {0, 1, 2});
  ASSERT_EQ(grown.code, 0) << grown.err;
  // Sent again with its id, at the key's new shard: a repeat, applied once.
  const v1::EmbeddingApplyResponse retried = apply(2);
  EXPECT_TRUE(retried.duplicate());
  EXPECT_EQ(retried.applied(), 1);
  EXPECT_EQ(EmbeddingPlaced({0, 1, 2}), trained);
}

TEST_F(ReshardTest, AWorkerFollowsAReshardWhoseRemovedShardIsStopped) {
  Form({0, 1, 2});
  std::shared_ptr<Client> worker =
      Client::Connect(List({0, 1, 2}), TestClientOptions());
  std::string name;
  for (int i = 0; ShardOf(name, 3) != 2; ++i) name = absl::StrCat("v", i);
  ASSERT_THAT(worker->GetVariable(Scalar(name)).status(), IsOk());
  ASSERT_THAT(worker->AssignAdd(name, Floats({1}, {5})).status(), IsOk());
  CliResult shrunk = Reshard({0, 1, 2}, {0, 1});
  ASSERT_EQ(shrunk.code, 0) << shrunk.err;
  // The shard taken out stops before the worker calls again: its next call
  // goes to that shard alone, which does not answer; another shard of its
  // list tells it of the re-shard, and it follows.
  shards_[2].reset();
  absl::StatusOr<ReadResult> read = worker->Read(name);
  ASSERT_THAT(read.status(), IsOk());
  EXPECT_EQ(read->value.bytes(), Floats({1}, {5}).bytes());
  EXPECT_EQ(worker->addresses().size(), 2u);
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

}  // namespace
}  // namespace varscope::cli::testing
