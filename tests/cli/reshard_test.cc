// `varscope reshard`: a cluster of in-process shards on port 0 (their
// identities recorded with their real addresses, so that clients can follow
// the new list), re-sharded 2 -> 3 -> 2.
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

}  // namespace
}  // namespace varscope::cli::testing
