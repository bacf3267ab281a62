// End-to-end: embedding variables (hash-keyed tables) through a real server:
// names, deterministic initial rows, admission, eviction, optimizers, the
// memory budget, export/import, exactly-once, durability and bad input.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "tests/testing/raw_call.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;
using ::varscope::testing::PollUntil;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

constexpr int64_t kDim = 4;

Tensor Keys(std::vector<int64_t> keys) {
  const int64_t n = static_cast<int64_t>(keys.size());
  return Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, keys);
}

Tensor Floats(std::vector<int64_t> dims, std::vector<float> values) {
  return Tensor::FromVector<float>(v1::DT_FLOAT, std::move(dims), values);
}

// `n` rows of kDim, every value `v`.
Tensor Fill(int64_t n, float v) {
  return Floats({n, kDim}, std::vector<float>(n * kDim, v));
}

std::vector<float> Values(const Tensor& t) {
  auto flat = t.flat<float>();
  return {flat.begin(), flat.end()};
}

v1::GetEmbeddingVariableRequest Request(const std::string& name,
                                        int64_t filter_freq = 0,
                                        int64_t steps_to_live = 0) {
  v1::GetEmbeddingVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::AUTO_REUSE);
  request.set_embedding_dim(kDim);
  request.mutable_initializer()->set_kind(v1::Initializer::RANDOM_UNIFORM);
  request.mutable_initializer()->set_seed(7);
  request.set_filter_freq(filter_freq);
  request.set_steps_to_live(steps_to_live);
  return request;
}

v1::Optimizer Sgd(double rate) {
  v1::Optimizer optimizer;
  optimizer.set_learning_rate(rate);
  optimizer.mutable_gradient_descent();
  return optimizer;
}

class EmbeddingTest : public ::testing::Test {
 protected:
  explicit EmbeddingTest(server::ServerOptions options = {})
      : server_(std::move(options)), client_(server_.NewClient()) {}

  void Create(const std::string& name, int64_t filter_freq = 0,
              int64_t steps_to_live = 0) {
    ASSERT_TRUE(
        client_->GetEmbeddingVariable(Request(name, filter_freq, steps_to_live))
            .ok());
  }

  std::vector<float> Lookup(const std::string& name, std::vector<int64_t> keys,
                            bool read_only = false) {
    absl::StatusOr<Tensor> rows = client_->EmbeddingLookup(
        name, Keys(std::move(keys)), std::nullopt, read_only);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? Values(*rows) : std::vector<float>();
  }

  v1::EmbeddingStats Stat(const std::string& name, int hottest = 0) {
    absl::StatusOr<v1::EmbeddingStats> stats =
        client_->EmbeddingStat(name, hottest);
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : v1::EmbeddingStats();
  }

  TestServer server_;
  std::shared_ptr<Client> client_;
};

TEST_F(EmbeddingTest, SharesTheVariableNamespaceWithGetVariablesErrors) {
  v1::GetEmbeddingVariableRequest request = Request("model/emb");
  request.set_mode(v1::CREATE);
  absl::StatusOr<v1::GetVariableResponse> created =
      client_->GetEmbeddingVariable(request);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created());
  EXPECT_EQ(created->variable().embedding().embedding_dim(), kDim);
  EXPECT_THAT(
      client_->GetEmbeddingVariable(request),
      StatusIs(absl::StatusCode::kAlreadyExists,
               "Variable model/emb already exists, disallowed. Did you mean "
               "to set reuse=True or reuse=tf.AUTO_REUSE in VarScope?"));
  request.set_mode(v1::REUSE);
  request.set_name("model/other");
  EXPECT_THAT(client_->GetEmbeddingVariable(request),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("Variable model/other does not exist")));
  request.set_name("model/emb");
  request.set_embedding_dim(8);
  EXPECT_THAT(client_->GetEmbeddingVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to share embedding variable model/emb, but "
                       "specified embedding_dim 8 and found embedding_dim "
                       "4."));

  v1::GetVariableRequest dense;
  dense.set_name("model/emb");
  dense.set_mode(v1::AUTO_REUSE);
  dense.set_dtype(v1::DT_FLOAT);
  EXPECT_THAT(client_->GetVariable(dense),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Variable model/emb is an embedding variable; a dense "
                       "variable cannot share its name."));
  dense.set_name("model/w");
  dense.mutable_shape()->add_dims(2);
  ASSERT_TRUE(client_->GetVariable(dense).ok());
  EXPECT_THAT(client_->GetEmbeddingVariable(Request("model/w")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Variable model/w is a dense variable; an embedding "
                       "variable cannot share its name."));
  EXPECT_THAT(client_->EmbeddingLookup("model/w", Keys({1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Variable model/w is not an embedding variable"));

  v1::ListVariablesRequest list;
  list.set_scope("model");
  absl::StatusOr<v1::ListVariablesResponse> listed =
      client_->ListVariables(list);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->entries_size(), 2);
  EXPECT_EQ(listed->entries(0).name(), "model/emb");
  EXPECT_TRUE(listed->entries(0).variable().has_embedding());
}

TEST_F(EmbeddingTest, RejectsBadOptions) {
  v1::GetEmbeddingVariableRequest request = Request("e");
  request.set_embedding_dim(0);
  EXPECT_THAT(client_->GetEmbeddingVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The embedding_dim of embedding variable e must be "
                       "positive, not 0"));
  request = Request("e");
  request.set_key_dtype(v1::DT_FLOAT);
  EXPECT_THAT(client_->GetEmbeddingVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The keys of embedding variable e must be int64 or "
                       "int32, not float32"));
  request = Request("e");
  request.set_value_dtype(v1::DT_DOUBLE);
  EXPECT_THAT(client_->GetEmbeddingVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The values of embedding variable e must be float32, "
                       "not float64"));
  request = Request("e");
  request.set_filter_freq(-1);
  EXPECT_THAT(client_->GetEmbeddingVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The filter_freq and steps_to_live of embedding "
                       "variable e must not be negative"));
  EXPECT_THAT(client_->Stat("e"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EmbeddingTest, InitialRowsAreAFunctionOfSeedAndKey) {
  Create("e");
  const std::vector<int64_t> keys = {0, -1, std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max(),
                                     1234567890123};
  const std::vector<float> first = Lookup("e", keys, /*read_only=*/true);
  ASSERT_EQ(first.size(), keys.size() * kDim);
  // Another worker, another variable with the same seed, and a restart.
  EXPECT_EQ(Values(*server_.NewClient()->EmbeddingLookup("e", Keys(keys))),
            first);
  Create("f");
  EXPECT_EQ(Lookup("f", keys), first);
  ASSERT_TRUE(server_.Restart().ok());
  client_ = server_.NewClient();
  EXPECT_EQ(Lookup("e", keys), first);
  // Different keys, different rows, inside the initializer's range.
  EXPECT_NE(std::vector<float>(first.begin(), first.begin() + kDim),
            std::vector<float>(first.begin() + kDim, first.begin() + 2 * kDim));
  for (float v : first) {
    EXPECT_GE(v, 0);
    EXPECT_LT(v, 1);
  }
}

TEST_F(EmbeddingTest, CounterFilterStoresAKeyFromItsNthSight) {
  Create("e", /*filter_freq=*/3);
  const std::vector<float> initial = Lookup("e", {5});  // 1st
  EXPECT_EQ(Stat("e").size(), 0);
  EXPECT_EQ(Stat("e").candidates(), 1);
  // An update below the frequency is dropped (2nd).
  absl::StatusOr<v1::EmbeddingApplyResponse> applied =
      client_->EmbeddingApply("e", Keys({5}), Fill(1, 1), Sgd(1));
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->applied(), 0);
  EXPECT_EQ(applied->filtered(), 1);
  EXPECT_EQ(Lookup("e", {5}, /*read_only=*/true), initial);
  EXPECT_EQ(Stat("e").size(), 0);
  EXPECT_EQ(Lookup("e", {5}), initial);  // 3rd: admitted
  const v1::EmbeddingStats stats = Stat("e", /*hottest=*/1);
  EXPECT_EQ(stats.size(), 1);
  EXPECT_EQ(stats.candidates(), 0);
  EXPECT_EQ(stats.admitted(), 1);
  EXPECT_EQ(stats.filtered(), 2);
  ASSERT_EQ(stats.hottest_size(), 1);
  EXPECT_EQ(stats.hottest(0).key(), 5);
  EXPECT_EQ(stats.hottest(0).frequency(), 3);
  // Now updates apply.
  ASSERT_TRUE(client_->EmbeddingApply("e", Keys({5}), Fill(1, 1), Sgd(1)).ok());
  std::vector<float> expected = initial;
  for (float& v : expected) v -= 1;
  EXPECT_EQ(Lookup("e", {5}), expected);
}

TEST_F(EmbeddingTest, GlobalStepEvictRemovesStaleKeysFromMemoryAndDisk) {
  Create("e", /*filter_freq=*/0, /*steps_to_live=*/2);
  const std::vector<float> initial = Lookup("e", {1}, /*read_only=*/true);
  ASSERT_TRUE(
      client_->EmbeddingApply("e", Keys({1, 2}), Fill(2, 1), Sgd(1), 1).ok());
  ASSERT_TRUE(
      client_->EmbeddingApply("e", Keys({2}), Fill(1, 1), Sgd(1), 5).ok());
  ASSERT_TRUE(PollUntil([&] { return Stat("e").size() == 1; }));
  EXPECT_EQ(Stat("e").evicted(), 1);
  ASSERT_TRUE(server_.Restart().ok());
  client_ = server_.NewClient();
  absl::StatusOr<v1::EmbeddingExportResponse> exported =
      client_->EmbeddingExport("e");
  ASSERT_TRUE(exported.ok()) << exported.status();
  absl::StatusOr<Tensor> keys = TensorFromProto(exported->mutable_keys());
  ASSERT_TRUE(keys.ok());
  EXPECT_THAT(keys->flat<int64_t>(), ElementsAre(2));
  // A re-admitted key starts again from its initial row.
  EXPECT_EQ(Lookup("e", {1}), initial);
}

TEST_F(EmbeddingTest, AdagradKeepsItsSlotPerKey) {
  Create("e");
  const std::vector<float> initial = Lookup("e", {9, -9}, /*read_only=*/true);
  v1::Optimizer adagrad;
  adagrad.set_learning_rate(0.5);
  adagrad.mutable_adagrad();
  // Key 9 twice in one step: its gradients are summed (2 + 2).
  ASSERT_TRUE(
      client_
          ->EmbeddingApply("e", Keys({9, -9, 9}),
                           Floats({3, kDim}, std::vector<float>(3 * kDim, 2)),
                           adagrad)
          .ok());
  ASSERT_TRUE(
      client_->EmbeddingApply("e", Keys({9}), Fill(1, 1), adagrad).ok());
  std::vector<float> expected = initial;
  for (int j = 0; j < kDim; ++j) {
    double acc = 0.1 + 16;
    double v = expected[j] - 0.5 * 4 / std::sqrt(acc);
    acc += 1;
    expected[j] = static_cast<float>(v - 0.5 * 1 / std::sqrt(acc));
    double acc2 = 0.1 + 4;
    expected[kDim + j] =
        static_cast<float>(expected[kDim + j] - 0.5 * 2 / std::sqrt(acc2));
  }
  EXPECT_THAT(Lookup("e", {9, -9}), Pointwise(FloatNear(1e-5), expected));
}

TEST_F(EmbeddingTest, ARowALookupAdmittedTakesItsFirstUpdateFromInitialSlots) {
  Create("e");
  v1::Optimizer adagrad;
  adagrad.set_learning_rate(0.5);
  adagrad.mutable_adagrad();
  // The table's rows gain Adagrad's accumulator, then a lookup admits key 5.
  ASSERT_TRUE(
      client_->EmbeddingApply("e", Keys({1}), Fill(1, 2), adagrad).ok());
  const std::vector<float> initial = Lookup("e", {5});
  EXPECT_EQ(Stat("e").size(), 2);
  ASSERT_TRUE(
      client_->EmbeddingApply("e", Keys({5}), Fill(1, 2), adagrad).ok());
  std::vector<float> expected = initial;
  for (float& v : expected) {
    v = static_cast<float>(v - 0.5 * 2 / std::sqrt(0.1 + 4));
  }
  EXPECT_THAT(Lookup("e", {5}), Pointwise(FloatNear(1e-6), expected));
  ASSERT_TRUE(server_.Restart().ok());
  client_ = server_.NewClient();
  EXPECT_THAT(Lookup("e", {5}, /*read_only=*/true),
              Pointwise(FloatNear(1e-6), expected));
}

TEST_F(EmbeddingTest, AdamTakesItsBetaPowersByValue) {
  Create("e");
  const std::vector<float> initial = Lookup("e", {3}, /*read_only=*/true);
  v1::Optimizer adam;
  adam.set_learning_rate(0.1);
  adam.mutable_adam()->mutable_beta1_power()->set_variable("beta1_power");
  adam.mutable_adam()->mutable_beta2_power()->set_value(0.999);
  EXPECT_THAT(client_->EmbeddingApply("e", Keys({3}), Fill(1, 1), adam),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "EmbeddingApply of e takes the optimizer's input "
                       "beta1_power by value (ScalarInput.value), not by "
                       "variable"));
  adam.mutable_adam()->mutable_beta1_power()->set_value(0.9);
  ASSERT_TRUE(client_->EmbeddingApply("e", Keys({3}), Fill(1, 1), adam).ok());
  // TensorFlow's first Adam step moves every element by about lr.
  const std::vector<float> after = Lookup("e", {3});
  for (int j = 0; j < kDim; ++j) {
    EXPECT_NEAR(after[j], initial[j] - 0.1, 1e-4);
  }
}

TEST_F(EmbeddingTest, BadInputFailsAndChangesNothing) {
  Create("e");
  const std::vector<float> before = Lookup("e", {1, 2});
  EXPECT_THAT(client_->EmbeddingLookup("e", Floats({1}, {1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Embedding variable e has int64 keys, not float32"));
  EXPECT_THAT(client_->EmbeddingLookup(
                  "e", Tensor::FromVector<int64_t>(v1::DT_INT64, {1, 1},
                                                   std::vector<int64_t>{1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The keys for embedding variable e must be a vector, "
                       "not of shape (1, 1)"));
  EXPECT_THAT(
      client_->EmbeddingApply("e", Keys({1, 2}), Fill(1, 1), Sgd(1)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "The gradients for embedding variable e must be float32 of "
               "shape (2, 4), not float32 of shape (1, 4)"));
  std::vector<float> nan(2 * kDim, 1);
  nan[kDim + 1] = std::nanf("");
  EXPECT_THAT(client_->EmbeddingApply("e", Keys({1, 2}), Floats({2, kDim}, nan),
                                      Sgd(1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The gradients for embedding variable e hold a NaN or "
                       "an infinity (row 1); nothing was applied"));
  EXPECT_THAT(
      client_->EmbeddingApply("e", Keys({1}), Fill(1, 1), v1::Optimizer()),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(client_->EmbeddingLookup("missing", Keys({1})),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("Variable missing does not exist")));
  EXPECT_EQ(Lookup("e", {1, 2}, /*read_only=*/true), before);

  // A request that does not parse.
  testing::RawCall call(testing::RawChannel(server_.address()),
                        "/varscope.v1.VariableService/EmbeddingLookup",
                        std::string("\xff\xff\xff", 3));
  const grpc::Status status = call.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "The request does not parse as varscope.v1.EmbeddingLookupRequest");
}

TEST_F(EmbeddingTest, AnUpdateRetriedAfterALostReplyAppliesOnce) {
  Create("e");
  const std::vector<float> initial = Lookup("e", {4});
  server_.ServiceForTest().DropUpdateRepliesForTest(1);
  absl::StatusOr<v1::EmbeddingApplyResponse> applied =
      client_->EmbeddingApply("e", Keys({4}), Fill(1, 1), Sgd(1));
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_TRUE(applied->duplicate());
  EXPECT_EQ(applied->applied(), 1);
  std::vector<float> expected = initial;
  for (float& v : expected) v -= 1;
  EXPECT_EQ(Lookup("e", {4}), expected);
}

TEST_F(EmbeddingTest, UpdatesSurviveARestart) {
  Create("e");
  ASSERT_TRUE(
      client_->EmbeddingApply("e", Keys({1, 2, 3}), Fill(3, 0.5), Sgd(1)).ok());
  const std::vector<float> before = Lookup("e", {1, 2, 3});
  ASSERT_TRUE(server_.Restart().ok());
  client_ = server_.NewClient();
  EXPECT_EQ(Lookup("e", {1, 2, 3}, /*read_only=*/true), before);
  EXPECT_EQ(Stat("e").size(), 3);
}

TEST_F(EmbeddingTest, ExportImportRoundTrip) {
  Create("a");
  Create("b");
  std::vector<int64_t> keys;
  for (int64_t k = -50; k < 50; ++k) keys.push_back(k * 1000003);
  const int64_t n = static_cast<int64_t>(keys.size());
  ASSERT_TRUE(
      client_->EmbeddingApply("a", Keys(keys), Fill(n, 0.25), Sgd(1), 3).ok());
  absl::StatusOr<v1::EmbeddingExportResponse> exported =
      client_->EmbeddingExport("a", /*page_size=*/7);
  ASSERT_TRUE(exported.ok()) << exported.status();
  Tensor k = *TensorFromProto(exported->mutable_keys());
  Tensor v = *TensorFromProto(exported->mutable_values());
  Tensor f = *TensorFromProto(exported->mutable_frequencies());
  Tensor s = *TensorFromProto(exported->mutable_last_steps());
  ASSERT_EQ(k.dims()[0], n);
  std::vector<int64_t> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_THAT(k.flat<int64_t>(), ::testing::ElementsAreArray(sorted));
  EXPECT_THAT(s.flat<int64_t>(), ::testing::Each(3));
  absl::StatusOr<int64_t> imported =
      client_->EmbeddingImport("b", k, v, &f, &s);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(*imported, n);
  absl::StatusOr<v1::EmbeddingExportResponse> again =
      client_->EmbeddingExport("b");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->keys().content(), k.bytes());
  EXPECT_EQ(again->values().content(), v.bytes());
  EXPECT_EQ(again->frequencies().content(), f.bytes());
  EXPECT_EQ(Lookup("b", sorted, /*read_only=*/true), Values(v));
}

// Exported with their slots, rows import into another variable with them
// (a slot it lacks is added), and remove_keys deletes rows in the same
// write.
TEST_F(EmbeddingTest, RowsMoveWithTheirSlotsAndRemoveKeysDeletes) {
  Create("a");
  Create("b");
  v1::Optimizer adagrad;
  adagrad.set_learning_rate(0.5);
  adagrad.mutable_adagrad();
  ASSERT_TRUE(
      client_->EmbeddingApply("a", Keys({1, 2, 3}), Fill(3, 2), adagrad, 4)
          .ok());
  ASSERT_TRUE(
      client_->EmbeddingApply("b", Keys({3, 9}), Fill(2, 1), Sgd(1), 1).ok());
  // The pages of `name`'s rows with their slots.
  auto pages_of = [&](const std::string& name) {
    v1::EmbeddingExportRequest request;
    request.set_name(name);
    request.set_with_slots(true);
    std::vector<v1::EmbeddingExportResponse> pages;
    EXPECT_THAT(
        client_->ForEachEmbeddingPage(request,
                                      [&](v1::EmbeddingExportResponse& page) {
                                        pages.push_back(page);
                                        return absl::OkStatus();
                                      }),
        ::varscope::testing::IsOk());
    return pages;
  };
  std::vector<v1::EmbeddingExportResponse> pages = pages_of("a");
  ASSERT_EQ(pages.size(), 1u);
  ASSERT_EQ(pages[0].slots_size(), 1);
  const v1::EmbeddingSlotRows& slot = pages[0].slots(0);
  EXPECT_FLOAT_EQ(slot.initial(), 0.1f);  // Adagrad's initial accumulator
  // 0.1 + 2^2 in every value of the three rows.
  Tensor accumulators =
      *TensorFromProto(pages[0].mutable_slots(0)->mutable_values());
  EXPECT_THAT(Values(accumulators), ::testing::Each(FloatNear(4.1f, 1e-5f)));

  // Into b: keys 1, 2, 3 with a's values and slot; key 9 removed.
  v1::EmbeddingImportRequest import;
  import.set_name("b");
  *import.mutable_keys() = pages[0].keys();
  *import.mutable_values() = pages[0].values();
  *import.mutable_frequencies() = pages[0].frequencies();
  *import.mutable_last_steps() = pages[0].last_steps();
  v1::EmbeddingSlotRows* moved = import.add_slots();
  moved->set_name(pages[0].slots(0).name());
  moved->set_initial(pages[0].slots(0).initial());
  TensorToProto(accumulators, moved->mutable_values());
  TensorToProto(Keys({9, 10}), import.mutable_remove_keys());
  absl::StatusOr<v1::EmbeddingImportResponse> imported =
      client_->EmbeddingImport(import);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->imported(), 3);
  EXPECT_EQ(imported->removed(), 1);  // 10 was not stored
  const std::vector<v1::EmbeddingExportResponse> again = pages_of("b");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].keys().content(), pages[0].keys().content());
  EXPECT_EQ(again[0].values().content(), pages[0].values().content());
  EXPECT_EQ(again[0].frequencies().content(), pages[0].frequencies().content());
  EXPECT_EQ(again[0].last_steps().content(), pages[0].last_steps().content());
  ASSERT_EQ(again[0].slots_size(), 1);
  EXPECT_EQ(again[0].slots(0).values().content(), accumulators.bytes());
  EXPECT_EQ(Stat("b").size(), 3);

  // Bad slots change nothing.
  v1::EmbeddingImportRequest bad = import;
  bad.mutable_slots(0)->clear_name();
  EXPECT_THAT(client_->EmbeddingImport(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A slot imported into embedding variable b has no "
                       "name"));
  bad = import;
  TensorToProto(Fill(2, 1), bad.mutable_slots(0)->mutable_values());
  EXPECT_THAT(client_->EmbeddingImport(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The slot " + import.slots(0).name() +
                           " for embedding variable b must be float32 of "
                           "shape (3, 4), not float32 of shape (2, 4)"));
  bad = import;
  TensorToProto(Floats({1}, {1}), bad.mutable_remove_keys());
  EXPECT_THAT(client_->EmbeddingImport(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Embedding variable b has int64 keys, not float32"));
  EXPECT_EQ(Stat("b").size(), 3);
}

TEST_F(EmbeddingTest, ADeletedVariablesRowsLeaveTheStoreAtTheNextStart) {
  Create("a");
  Create("b");
  ASSERT_TRUE(
      client_->EmbeddingApply("a", Keys({1, 2, 3}), Fill(3, 1), Sgd(1)).ok());
  ASSERT_TRUE(
      client_->EmbeddingApply("b", Keys({1, 2}), Fill(2, 1), Sgd(1)).ok());
  ASSERT_TRUE(client_->Delete("a", false).ok());
  ASSERT_TRUE(server_.Restart().ok());
  server_.Stop();
  absl::StatusOr<std::unique_ptr<server::Storage>> storage =
      server::Storage::Open({}, server_.data_dir());
  ASSERT_TRUE(storage.ok()) << storage.status();
  int rows = 0;
  ASSERT_TRUE(
      (*storage)
          ->ScanEmbedding("", std::string(9, '\xff'),
                          [&](absl::string_view key, absl::string_view) {
                            rows += key.size() == 16;
                            return true;
                          })
          .ok());
  EXPECT_EQ(rows, 2);
}

server::ServerOptions IntervalOptions() {
  server::ServerOptions options;
  options.table.durability.mode = server::Durability::Mode::kInterval;
  options.table.durability.interval = absl::Milliseconds(50);
  return options;
}

class IntervalEmbeddingTest : public EmbeddingTest {
 protected:
  IntervalEmbeddingTest() : EmbeddingTest(IntervalOptions()) {}
};

TEST_F(IntervalEmbeddingTest, UpdatesReachTheStore) {
  Create("e");
  // Their exactly-once records are written after the calls returned (a
  // server once crashed on them).
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(
        client_->EmbeddingApply("e", Keys({1, 2, i}), Fill(3, 0.5), Sgd(1))
            .ok());
  }
  const std::vector<float> before = Lookup("e", {1, 2});
  ASSERT_TRUE(server_.Restart().ok());
  client_ = server_.NewClient();
  EXPECT_EQ(Lookup("e", {1, 2}, /*read_only=*/true), before);
}

TEST_F(IntervalEmbeddingTest, ManyRowsInAnyKeyOrderAreWrittenBackTogether) {
  Create("e");
  // 3001 distinct keys, negative and positive, in scrambled order, then the
  // first 100 again: their gradients are summed.
  std::vector<int64_t> keys;
  for (int64_t i = 0; i < 3001; ++i) keys.push_back((i * 7919) % 3001 - 1500);
  for (int64_t i = 0; i < 100; ++i) keys.push_back(keys[i]);
  const int64_t n = static_cast<int64_t>(keys.size());
  const std::vector<float> initial = Lookup("e", keys, /*read_only=*/true);
  ASSERT_TRUE(
      client_->EmbeddingApply("e", Keys(keys), Fill(n, 0.5), Sgd(1)).ok());
  std::vector<float> expected = initial;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < kDim; ++j) {
      expected[i * kDim + j] -= i < 100 || i >= 3001 ? 1.0f : 0.5f;
    }
  }
  // Counted lookups make every row dirty again.
  EXPECT_EQ(Lookup("e", keys), expected);
  ASSERT_TRUE(server_.Restart().ok());
  client_ = server_.NewClient();
  EXPECT_EQ(Lookup("e", keys, /*read_only=*/true), expected);
  EXPECT_EQ(Stat("e").size(), 3001);
  // An update, then two counted lookups of the first 100 keys.
  EXPECT_EQ(Stat("e", /*hottest=*/1).hottest(0).frequency(), 3);
}

constexpr int64_t kBudget = 1 << 20;

server::ServerOptions BudgetOptions() {
  server::ServerOptions options;
  options.memory_budget = kBudget;
  return options;
}

class BudgetEmbeddingTest : public EmbeddingTest {
 protected:
  BudgetEmbeddingTest() : EmbeddingTest(BudgetOptions()) {}
};

TEST_F(BudgetEmbeddingTest, RowsBeyondTheBudgetLiveOnDiskAndReadThrough) {
  Create("e");
  constexpr int64_t kBatch = 1024;
  std::vector<float> first;
  int64_t next = 0;
  // Until the table is 3x the budget (its own accounting).
  while (Stat("e").memory_bytes() + Stat("e").disk_bytes() < 3 * kBudget) {
    std::vector<int64_t> keys;
    for (int64_t i = 0; i < kBatch; ++i) keys.push_back(next++);
    ASSERT_TRUE(
        client_->EmbeddingApply("e", Keys(keys), Fill(kBatch, 0.5), Sgd(1))
            .ok());
    if (first.empty()) first = Lookup("e", {0, 1, 2});
    // One call may add its rows (and grow the pages and indexes holding
    // them) before the next waits for room.
    EXPECT_LE(Stat("e").memory_bytes(), kBudget * 3 / 2);
  }
  // The background thread brings memory back under the budget.
  EXPECT_TRUE(PollUntil([&] { return Stat("e").memory_bytes() <= kBudget; }));
  const v1::EmbeddingStats stats = Stat("e");
  EXPECT_EQ(stats.size(), next);
  EXPECT_GT(stats.disk_keys(), 0);
  // The first rows went cold; a lookup reads them back.
  EXPECT_EQ(Lookup("e", {0, 1, 2}), first);
  ASSERT_TRUE(server_.Restart().ok());
  client_ = server_.NewClient();
  EXPECT_EQ(Lookup("e", {0, 1, 2}), first);
  EXPECT_EQ(Stat("e").size(), next);
  EXPECT_LE(Stat("e").memory_bytes(), kBudget);
}

}  // namespace
}  // namespace varscope
