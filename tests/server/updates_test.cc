// End-to-end: batched and sparse updates, optimizers, exactly-once updates.
#include "tests/testing/updates.h"

#include <cmath>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/variable_service.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Pointwise;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

Tensor Doubles(std::vector<int64_t> dims, std::vector<double> values) {
  return Tensor::FromVector<double>(v1::DT_DOUBLE, std::move(dims), values);
}

Tensor Indices(std::vector<int64_t> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, values);
}

std::vector<double> Values(const Tensor& t) {
  auto flat = t.flat<double>();
  return {flat.begin(), flat.end()};
}

class UpdatesTest : public ::testing::Test {
 protected:
  void Create(const std::string& name, std::vector<int64_t> shape,
              double fill = 0) {
    VariableScope scope;
    GetVariableOptions options;
    options.shape = std::move(shape);
    options.dtype = v1::DT_DOUBLE;
    options.initializer = v1::Initializer();
    options.initializer->set_kind(v1::Initializer::CONSTANT);
    TensorToProto(Doubles({}, {fill}), options.initializer->mutable_value());
    ASSERT_TRUE(GetVariable(client_, scope, name, options).ok());
  }

  // Adam's beta1_power and beta2_power, as TensorFlow starts them.
  void CreateBetaPowers() {
    Create("beta1_power", {}, 0.9);
    Create("beta2_power", {}, 0.999);
  }

  std::vector<double> ReadValues(const std::string& name) {
    absl::StatusOr<ReadResult> read = client_->Read(name);
    EXPECT_TRUE(read.ok()) << read.status();
    return read.ok() ? Values(read->value) : std::vector<double>{};
  }

  static v1::Update Assign(const std::string& name, Tensor value) {
    v1::Update u;
    u.set_name(name);
    TensorToProto(std::move(value), u.mutable_assign());
    return u;
  }

  static v1::Update Add(const std::string& name, Tensor delta) {
    v1::Update u;
    u.set_name(name);
    TensorToProto(std::move(delta), u.mutable_assign_add());
    return u;
  }

  static v1::Update Scatter(const std::string& name, std::vector<int64_t> rows,
                            Tensor values, v1::Scatter::Mode mode) {
    v1::Update u;
    u.set_name(name);
    TensorToProto(Indices(std::move(rows)),
                  u.mutable_scatter()->mutable_indices());
    TensorToProto(std::move(values), u.mutable_scatter()->mutable_rows());
    u.mutable_scatter()->set_mode(mode);
    return u;
  }

  static v1::Update Apply(const std::string& name, const v1::Optimizer& opt,
                          Tensor grad,
                          std::optional<std::vector<int64_t>> rows = {}) {
    v1::Update u;
    u.set_name(name);
    *u.mutable_apply_gradient()->mutable_optimizer() = opt;
    TensorToProto(std::move(grad),
                  u.mutable_apply_gradient()->mutable_gradient());
    if (rows.has_value()) {
      TensorToProto(Indices(*rows),
                    u.mutable_apply_gradient()->mutable_indices());
    }
    return u;
  }

  absl::StatusOr<v1::BatchUpdateResponse> Run(std::vector<v1::Update> updates,
                                              bool return_values = false) {
    v1::BatchUpdateRequest request;
    for (auto& u : updates) *request.add_updates() = std::move(u);
    request.set_return_values(return_values);
    return client_->BatchUpdate(std::move(request));
  }

  TestServer server_;
  std::shared_ptr<Client> client_ = server_.NewClient();
};

TEST_F(UpdatesTest, BatchAppliesEveryUpdateInOrder) {
  Create("a", {2});
  Create("b", {2}, 1);
  VS_ASSERT_OK_AND_ASSIGN(
      v1::BatchUpdateResponse r,
      Run({Assign("a", Doubles({2}, {1, 2})), Add("a", Doubles({2}, {10, 10})),
           Add("b", Doubles({2}, {1, 1}))},
          /*return_values=*/true));
  EXPECT_THAT(r.versions(), ElementsAre(2, 2, 2));  // one version per batch
  EXPECT_THAT(ReadValues("a"), ElementsAre(11, 12));
  EXPECT_THAT(ReadValues("b"), ElementsAre(2, 2));
  ASSERT_EQ(r.values_size(), 3);
}

TEST_F(UpdatesTest, FailingUpdateLeavesTheWholeBatchUnapplied) {
  Create("a", {2});
  Create("b", {2});
  EXPECT_THAT(
      Run({Add("a", Doubles({2}, {1, 1})), Add("b", Doubles({3}, {1, 1, 1}))}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Cannot add a tensor of shape (3,) to variable b of "
               "shape (2,)"));
  v1::Update stale = Add("b", Doubles({2}, {1, 1}));
  stale.set_expected_version(7);
  EXPECT_THAT(
      Run({Add("a", Doubles({2}, {1, 1})), stale}),
      StatusIs(absl::StatusCode::kAborted,
               "Variable b is at version 1, not the expected version 7"));
  EXPECT_THAT(
      Run({Add("a", Doubles({2}, {1, 1})), Add("nope", Doubles({1}, {1}))}),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadValues("a"), ElementsAre(0, 0));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult a, client_->Read("a"));
  EXPECT_EQ(a.version, 1);
}

TEST_F(UpdatesTest, BatchReadSeesAllOfABatchOrNone) {
  constexpr int kVars = 8;
  for (int i = 0; i < kVars; ++i) Create(absl::StrCat("m/v", i), {1000});
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::shared_ptr<Client> client = server_.NewClient();
    for (int step = 0; step < 200; ++step) {
      v1::BatchUpdateRequest request;
      for (int i = 0; i < kVars; ++i) {
        *request.add_updates() =
            Add(absl::StrCat("m/v", i),
                Doubles({1000}, std::vector<double>(1000, 1)));
      }
      ASSERT_TRUE(client->BatchUpdate(std::move(request)).ok());
    }
    stop = true;
  });
  int reads = 0;
  while (!stop || reads == 0) {
    v1::BatchReadRequest request;
    request.set_scope("m");
    VS_ASSERT_OK_AND_ASSIGN(v1::BatchReadResponse r,
                            client_->BatchRead(request));
    ASSERT_EQ(r.entries_size(), kVars);
    const int64_t version = r.entries(0).version();
    for (const auto& e : r.entries()) {
      ASSERT_EQ(e.version(), version) << "a torn batch";
      VS_ASSERT_OK_AND_ASSIGN(
          Tensor t, Tensor::FromBytes(e.value().dtype(),
                                      {e.value().shape().dims().begin(),
                                       e.value().shape().dims().end()},
                                      e.value().content()));
      ASSERT_EQ(t.flat<double>()[999], static_cast<double>(version - 1));
    }
    ++reads;
  }
  writer.join();
  EXPECT_GT(reads, 0);
}

TEST_F(UpdatesTest, GatherAndScatterWorkOnRows) {
  Create("emb", {5, 2});
  VS_ASSERT_OK(
      Run({Scatter("emb", {3, 1, 3}, Doubles({3, 2}, {1, 1, 2, 2, 4, 4}),
                   v1::Scatter::ADD)})
          .status());
  VS_ASSERT_OK_AND_ASSIGN(ReadResult rows,
                          client_->Gather("emb", Indices({3, 1, 0})));
  EXPECT_THAT(Values(rows.value), ElementsAre(5, 5, 2, 2, 0, 0));  // 3 summed
  EXPECT_THAT(rows.value.dims(), ElementsAre(3, 2));
  VS_ASSERT_OK(Run({Scatter("emb", {0, 0}, Doubles({2, 2}, {7, 7, 8, 8}),
                            v1::Scatter::UPDATE)})
                   .status());
  EXPECT_THAT(ReadValues("emb"), ElementsAre(8, 8, 2, 2, 0, 0, 5, 5, 0, 0));
}

// Found by tests/fuzz/table_fuzz: a scatter into rows of no bytes crashed
// the server (it made a chunk for them beyond the variable's chunks).
TEST_F(UpdatesTest, ScatterIntoEmptyRowsChangesOnlyTheVersion) {
  GetVariableOptions options;
  options.shape = std::vector<int64_t>{3, 0};
  options.dtype = v1::DT_DOUBLE;
  VS_ASSERT_OK(GetVariable(client_, VariableScope(), "empty_rows", options));
  VS_ASSERT_OK_AND_ASSIGN(
      v1::BatchUpdateResponse result,
      Run({Scatter("empty_rows", {1, 2}, Doubles({2, 0}, {}),
                   v1::Scatter::ADD)}));
  EXPECT_THAT(result.versions(), ElementsAre(2));
  VS_ASSERT_OK(server_.Restart());  // an extra chunk would fail to load
  client_ = server_.NewClient();
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("empty_rows"));
  EXPECT_EQ(read.version, 2);
  EXPECT_THAT(read.value.dims(), ElementsAre(3, 0));
}

TEST_F(UpdatesTest, OutOfRangeIndicesAreRejectedAndChangeNothing) {
  Create("emb", {5, 2});
  EXPECT_THAT(Run({Scatter("emb", {1, 5}, Doubles({2, 2}, {1, 1, 1, 1}),
                           v1::Scatter::ADD)}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Index 5 at position 1 is out of range for variable emb "
                       "with 5 rows"));
  EXPECT_THAT(client_->Gather("emb", Indices({-1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Index -1 at position 0 is out of range for variable "
                       "emb with 5 rows"));
  EXPECT_THAT(
      Run({Scatter("emb", {1}, Doubles({1, 3}, {1, 1, 1}), v1::Scatter::ADD)}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Cannot scatter a tensor of shape (1, 3) to variable emb "
               "of shape (1, 2)"));
  EXPECT_THAT(ReadValues("emb"), ::testing::Each(0.0));
}

// Issue 11: a bool tensor holding 0x07 was stored as it came (and reading
// such a byte as a bool is undefined).
TEST_F(UpdatesTest, BoolTensorsOtherThanZeroOrOneAreRefusedEverywhere) {
  auto bools = [](std::vector<int64_t> dims, std::vector<uint8_t> bytes) {
    return Tensor::FromVector<uint8_t>(v1::DT_BOOL, std::move(dims), bytes);
  };
  GetVariableOptions options;
  options.shape = std::vector<int64_t>{2, 2};
  options.dtype = v1::DT_BOOL;
  VS_ASSERT_OK(GetVariable(client_, VariableScope(), "flags", options));
  const Tensor bad = bools({2, 2}, {1, 0, 0, 7});
  const char* refused = "bool tensor element 3 is 0x07, not 0 or 1";
  EXPECT_THAT(Run({Assign("flags", bad)}),
              StatusIs(absl::StatusCode::kInvalidArgument, refused));
  EXPECT_THAT(Run({Add("flags", bad)}),
              StatusIs(absl::StatusCode::kInvalidArgument, refused));
  EXPECT_THAT(
      Run({Scatter("flags", {1}, bools({1, 2}, {0, 2}), v1::Scatter::UPDATE)}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "bool tensor element 1 is 0x02, not 0 or 1"));
  ClientOptions streaming;
  streaming.stream_threshold_bytes = 1;
  EXPECT_THAT(server_.NewClient(streaming)->Assign("flags", bad),
              StatusIs(absl::StatusCode::kInvalidArgument, refused));
  options.initializer = v1::Initializer();
  options.initializer->set_kind(v1::Initializer::CONSTANT);
  TensorToProto(bad, options.initializer->mutable_value());
  EXPECT_THAT(
      GetVariable(client_, VariableScope(), "flags2", options),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat("Invalid constant initializer value: ", refused)));

  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("flags"));
  EXPECT_EQ(read.version, 1);
  EXPECT_EQ(read.value.bytes(), std::string(4, '\0'));
  EXPECT_THAT(client_->Stat("flags2"), StatusIs(absl::StatusCode::kNotFound));
  VS_EXPECT_OK(Run({Assign("flags", bools({2, 2}, {1, 0, 0, 1}))}).status());
}

TEST_F(UpdatesTest, SparseUpdatesWriteOnlyTheChunksTheyTouch) {
  server::ServerOptions options;
  options.table.chunk_bytes = 16 * 8;  // 16 doubles: 4 rows of 4 per chunk
  TestServer server(options);
  client_ = server.NewClient();
  Create("emb", {64, 4});
  VS_ASSERT_OK(
      Run({Scatter("emb", {1, 62}, Doubles({2, 4}, {1, 1, 1, 1, 2, 2, 2, 2}),
                   v1::Scatter::ADD)})
          .status());
  // A restart reads every chunk back: touched ones changed, others kept.
  VS_ASSERT_OK(server.Restart());
  client_ = server.NewClient();
  std::vector<double> values = ReadValues("emb");
  for (int row = 0; row < 64; ++row) {
    const double want = row == 1 ? 1 : row == 62 ? 2 : 0;
    for (int c = 0; c < 4; ++c) ASSERT_EQ(values[row * 4 + c], want) << row;
  }
}

// Reference optimizers in float64, written from TensorFlow's documented
// update rules, independently of the server's code.
struct Reference {
  std::vector<double> w, s0, s1, s2;
  double b1p = 0.9, b2p = 0.999;
};

void ReferenceStep(const v1::Optimizer& opt, Reference& r,
                   const std::vector<double>& g) {
  const double lr = opt.learning_rate();
  for (size_t i = 0; i < g.size(); ++i) {
    switch (opt.kind_case()) {
      case v1::Optimizer::kGradientDescent:
        r.w[i] -= lr * g[i];
        break;
      case v1::Optimizer::kMomentum: {
        const double m = opt.momentum().momentum();
        r.s0[i] = m * r.s0[i] + g[i];
        r.w[i] -= opt.momentum().use_nesterov() ? lr * (g[i] + m * r.s0[i])
                                                : lr * r.s0[i];
        break;
      }
      case v1::Optimizer::kAdagrad:
        r.s0[i] += g[i] * g[i];
        r.w[i] -= lr * g[i] / std::sqrt(r.s0[i]);
        break;
      case v1::Optimizer::kAdam: {
        const double alpha = lr * std::sqrt(1 - r.b2p) / (1 - r.b1p);
        r.s0[i] = 0.9 * r.s0[i] + 0.1 * g[i];
        r.s1[i] = 0.999 * r.s1[i] + 0.001 * g[i] * g[i];
        r.w[i] -= alpha * r.s0[i] / (std::sqrt(r.s1[i]) + 1e-8);
        break;
      }
      case v1::Optimizer::kRmsProp: {
        // Slots as TensorFlow orders them: rms (s0), mg (s1, when centered),
        // momentum (s1, or s2 when centered).
        const double rho = 0.9, eps = 1e-10, mom = opt.rms_prop().momentum();
        const bool centered = opt.rms_prop().centered();
        std::vector<double>& momentum = centered ? r.s2 : r.s1;
        r.s0[i] = rho * r.s0[i] + (1 - rho) * g[i] * g[i];
        double denom = r.s0[i];
        if (centered) {
          r.s1[i] = rho * r.s1[i] + (1 - rho) * g[i];
          denom -= r.s1[i] * r.s1[i];
        }
        momentum[i] = mom * momentum[i] + lr * g[i] / std::sqrt(denom + eps);
        r.w[i] -= momentum[i];
        break;
      }
      case v1::Optimizer::kFtrl: {
        const double l1 = opt.ftrl().l1_regularization_strength();
        const double l2 = opt.ftrl().l2_regularization_strength();
        const double n = r.s0[i] + g[i] * g[i];
        const double sigma = (std::sqrt(n) - std::sqrt(r.s0[i])) / lr;
        r.s1[i] += g[i] - sigma * r.w[i];
        r.s0[i] = n;
        const double z = r.s1[i];
        r.w[i] = std::abs(z) <= l1 ? 0
                                   : (std::copysign(l1, z) - z) /
                                         (std::sqrt(n) / lr + 2 * l2);
        break;
      }
      default:
        break;
    }
  }
  r.b1p *= 0.9;
  r.b2p *= 0.999;
}

struct OptimizerCase {
  std::string name;
  v1::Optimizer optimizer;
  std::vector<std::string> slots;
  double s0_init = 0;
};

std::vector<OptimizerCase> OptimizerCases() {
  std::vector<OptimizerCase> cases;
  v1::Optimizer o;
  o.set_learning_rate(0.1);
  o.mutable_gradient_descent();
  cases.push_back({"sgd", o, {}});
  o.mutable_momentum()->set_momentum(0.9);
  cases.push_back({"momentum", o, {"Momentum"}});
  o.mutable_momentum()->set_use_nesterov(true);
  cases.push_back({"nesterov", o, {"Momentum"}});
  o.mutable_adagrad();
  cases.push_back({"adagrad", o, {"Adagrad"}, 0.1});
  o.mutable_adam()->mutable_beta1_power()->set_variable("beta1_power");
  o.mutable_adam()->mutable_beta2_power()->set_variable("beta2_power");
  cases.push_back({"adam", o, {"Adam", "Adam_1"}});
  o.mutable_rms_prop()->set_momentum(0.5);
  cases.push_back({"rmsprop", o, {"RMSProp", "RMSProp_1"}, 1});
  o.mutable_rms_prop()->set_centered(true);
  cases.push_back(
      {"rmsprop_centered", o, {"RMSProp", "RMSProp_1", "RMSProp_2"}, 1});
  o.mutable_ftrl()->set_l1_regularization_strength(0.01);
  o.mutable_ftrl()->set_l2_regularization_strength(0.02);
  cases.push_back({"ftrl", o, {"Ftrl", "Ftrl_1"}, 0.1});
  return cases;
}

class OptimizerTest : public UpdatesTest,
                      public ::testing::WithParamInterface<OptimizerCase> {};

TEST_P(OptimizerTest, DenseStepsMatchTheReferenceAndNameSlotsAsTensorFlow) {
  const OptimizerCase& c = GetParam();
  Create("w", {4}, 0.5);
  CreateBetaPowers();
  Reference ref{std::vector<double>(4, 0.5), std::vector<double>(4, c.s0_init),
                std::vector<double>(4, 0), std::vector<double>(4, 0)};
  for (int step = 0; step < 5; ++step) {
    std::vector<double> g = {0.1 * step - 0.2, 0.3, -0.7, 1.5 / (step + 1)};
    VS_ASSERT_OK(Run({Apply("w", c.optimizer, Doubles({4}, g))}).status());
    ReferenceStep(c.optimizer, ref, g);
  }
  EXPECT_THAT(ReadValues("w"), Pointwise(DoubleNear(1e-12), ref.w));
  for (const std::string& slot : c.slots) {
    VS_ASSERT_OK_AND_ASSIGN(v1::VariableInfo info,
                            client_->Stat(absl::StrCat("w/", slot)));
    EXPECT_FALSE(info.trainable());
  }
  if (!c.slots.empty()) {
    EXPECT_THAT(ReadValues(absl::StrCat("w/", c.slots[0])),
                Pointwise(DoubleNear(1e-12), ref.s0));
  }
}

TEST_P(OptimizerTest, SparseStepsSumDuplicatesAndTouchOnlyTheirRows) {
  const OptimizerCase& c = GetParam();
  Create("emb", {4, 2}, 0.5);
  CreateBetaPowers();
  Reference ref{std::vector<double>(2, 0.5), std::vector<double>(2, c.s0_init),
                std::vector<double>(2, 0), std::vector<double>(2, 0)};
  for (int step = 0; step < 3; ++step) {
    // Row 2 twice: its gradients are summed before one step.
    VS_ASSERT_OK(
        Run({Apply("emb", c.optimizer, Doubles({2, 2}, {0.25, -0.5, 0.5, 1.0}),
                   std::vector<int64_t>{2, 2})})
            .status());
    ReferenceStep(c.optimizer, ref, {0.75, 0.5});
  }
  std::vector<double> values = ReadValues("emb");
  EXPECT_THAT(std::vector<double>(values.begin() + 4, values.begin() + 6),
              Pointwise(DoubleNear(1e-12), ref.w));
  for (int row : {0, 1, 3}) {
    EXPECT_EQ(values[row * 2], 0.5);
    EXPECT_EQ(values[row * 2 + 1], 0.5);
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, OptimizerTest, ::testing::ValuesIn(OptimizerCases()),
    [](const ::testing::TestParamInfo<OptimizerCase>& info) {
      return info.param.name;
    });

v1::Optimizer Sgd(double learning_rate) {
  v1::Optimizer o;
  o.set_learning_rate(learning_rate);
  o.mutable_gradient_descent();
  return o;
}

v1::Optimizer Adam(double learning_rate) {
  v1::Optimizer o;
  o.set_learning_rate(learning_rate);
  o.mutable_adam()->mutable_beta1_power()->set_variable("beta1_power");
  o.mutable_adam()->mutable_beta2_power()->set_variable("beta2_power");
  return o;
}

TEST_F(UpdatesTest, TheOptimizersNameNamesItsSlotsAsTensorFlow) {
  Create("w", {2}, 1);
  CreateBetaPowers();
  v1::Optimizer adam = Adam(0.1);
  adam.set_name("MyAdam");
  VS_ASSERT_OK(Run({Apply("w", adam, Doubles({2}, {1, 1}))}).status());
  VS_EXPECT_OK(client_->Stat("w/MyAdam").status());
  VS_EXPECT_OK(client_->Stat("w/MyAdam_1").status());
  EXPECT_THAT(
      client_->Stat("w/Adam"),
      StatusIs(absl::StatusCode::kNotFound,
               ::testing::StartsWith("Variable w/Adam does not exist")));
  // Centered RMSProp: rms, mg, momentum, named in that order.
  Create("r", {1}, 1);
  v1::Optimizer rms;
  rms.set_learning_rate(0.1);
  rms.mutable_rms_prop()->set_centered(true);
  VS_ASSERT_OK(Run({Apply("r", rms, Doubles({1}, {2}))}).status());
  EXPECT_THAT(ReadValues("r/RMSProp"), ElementsAre(DoubleNear(1.3, 1e-12)));
  EXPECT_THAT(ReadValues("r/RMSProp_1"), ElementsAre(DoubleNear(0.2, 1e-12)));
  EXPECT_THAT(
      ReadValues("r/RMSProp_2"),
      ElementsAre(DoubleNear(0.1 * 2 / std::sqrt(1.3 - 0.04 + 1e-10), 1e-12)));
}

TEST_F(UpdatesTest, AdamAdvancesItsSharedBetaPowersOncePerBatch) {
  Create("a", {1}, 1);
  Create("b", {1}, 1);
  CreateBetaPowers();
  // Both variables step with beta1_power 0.9 and beta2_power 0.999, which
  // then advance once (TensorFlow's _finish).
  VS_ASSERT_OK(Run({Apply("a", Adam(0.1), Doubles({1}, {0.5})),
                    Apply("b", Adam(0.1), Doubles({1}, {0.5}))})
                   .status());
  const double step1 = 0.1 * std::sqrt(1 - 0.999) / (1 - 0.9) * (0.1 * 0.5) /
                       (std::sqrt(0.001 * 0.25) + 1e-8);
  EXPECT_THAT(ReadValues("a"), ElementsAre(DoubleNear(1 - step1, 1e-12)));
  EXPECT_THAT(ReadValues("b"), ElementsAre(DoubleNear(1 - step1, 1e-12)));
  EXPECT_THAT(ReadValues("beta1_power"), ElementsAre(DoubleNear(0.81, 1e-15)));
  EXPECT_THAT(ReadValues("beta2_power"),
              ElementsAre(DoubleNear(0.999 * 0.999, 1e-15)));
  // Given by value (a client does so for powers on another shard), they are
  // used as given and left alone.
  v1::Optimizer given = Adam(0.1);
  given.mutable_adam()->mutable_beta1_power()->set_value(0.5);
  given.mutable_adam()->mutable_beta2_power()->set_value(0.25);
  Create("c", {1}, 1);
  VS_ASSERT_OK(Run({Apply("c", given, Doubles({1}, {0.5}))}).status());
  const double step_given = 0.1 * std::sqrt(1 - 0.25) / (1 - 0.5) *
                            (0.1 * 0.5) / (std::sqrt(0.001 * 0.25) + 1e-8);
  EXPECT_THAT(ReadValues("c"), ElementsAre(DoubleNear(1 - step_given, 1e-12)));
  EXPECT_THAT(ReadValues("beta1_power"), ElementsAre(DoubleNear(0.81, 1e-15)));
}

TEST_F(UpdatesTest, AdamNeedsItsBetaPowers) {
  Create("w", {1}, 1);
  v1::Optimizer bare;
  bare.set_learning_rate(0.1);
  bare.mutable_adam();
  EXPECT_THAT(Run({Apply("w", bare, Doubles({1}, {1}))}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Adam needs its beta1_power and beta2_power "
                       "(TensorFlow's non-slot variables): name them, or give "
                       "their values"));
  EXPECT_THAT(
      Run({Apply("w", Adam(0.1), Doubles({1}, {1}))}),
      StatusIs(absl::StatusCode::kNotFound,
               ::testing::StartsWith("Variable beta1_power does not exist.")));
  Create("beta1_power", {2}, 0.9);  // not a scalar
  Create("beta2_power", {}, 0.999);
  EXPECT_THAT(Run({Apply("w", Adam(0.1), Doubles({1}, {1}))}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The optimizer's input beta1_power must be a scalar, "
                       "not of shape (2,)"));
  EXPECT_THAT(ReadValues("w"), ElementsAre(1));
}

TEST_F(UpdatesTest, ScheduleReadsTheGlobalStepInTheSameBatch) {
  Create("w", {1}, 0);
  VS_ASSERT_OK_AND_ASSIGN(Variable step,
                          GetGlobalStep(client_, Reuse::kAutoReuse));
  const int64_t seven = 7, one = 1;
  VS_ASSERT_OK(
      step.Assign(Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&seven, 1}))
          .status());
  v1::Optimizer decayed = Sgd(0.1);
  auto* schedule = decayed.mutable_schedule();
  schedule->mutable_global_step()->set_variable("global_step");
  schedule->mutable_exponential_decay()->set_decay_steps(4);
  schedule->mutable_exponential_decay()->set_decay_rate(0.5);
  schedule->mutable_exponential_decay()->set_staircase(true);
  // Each step uses the rate at the global step before the batch's increment:
  // floor(7 / 4) = 1, then floor(8 / 4) = 2.
  double expected = 0;
  for (int64_t at : {7, 8}) {
    VS_ASSERT_OK(Run({Apply("w", decayed, Doubles({1}, {1})),
                      testing::WholeUpdate("global_step",
                                           Tensor::FromVector<int64_t>(
                                               v1::DT_INT64, {}, {&one, 1}),
                                           /*add=*/true)})
                     .status());
    expected -= 0.1 * std::pow(0.5, std::floor(at / 4.0));
    EXPECT_THAT(ReadValues("w"), ElementsAre(DoubleNear(expected, 1e-15)));
  }
  // The step given by value; a bad schedule or a missing step is refused.
  schedule->mutable_global_step()->set_value(100);
  VS_ASSERT_OK(Run({Apply("w", decayed, Doubles({1}, {1}))}).status());
  expected -= 0.1 * std::pow(0.5, 25);
  EXPECT_THAT(ReadValues("w"), ElementsAre(DoubleNear(expected, 1e-15)));
  schedule->mutable_exponential_decay()->set_decay_steps(-1);
  EXPECT_THAT(Run({Apply("w", decayed, Doubles({1}, {1}))}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid learning-rate schedule decay_steps: -1 (must "
                       "be positive)"));
  schedule->mutable_exponential_decay()->set_decay_steps(4);
  schedule->mutable_global_step()->set_variable("no_step");
  schedule->mutable_global_step()->clear_value();
  EXPECT_THAT(Run({Apply("w", decayed, Doubles({1}, {1}))}),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::StartsWith("Variable no_step does not "
                                             "exist.")));
  // A schedule whose rate turns negative at this step.
  v1::Optimizer negative = Sgd(0.1);
  negative.mutable_schedule()->mutable_global_step()->set_value(10);
  auto* poly = negative.mutable_schedule()->mutable_polynomial_decay();
  poly->set_decay_steps(10);
  poly->set_end_learning_rate(-1);
  poly->set_power(1);
  EXPECT_THAT(Run({Apply("w", negative, Doubles({1}, {1}))}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid optimizer learning_rate: -1 (the schedule's "
                       "value at global step 10)"));
  EXPECT_THAT(ReadValues("w"), ElementsAre(DoubleNear(expected, 1e-15)));
}

absl::Status CreateConstrained(Client& client, const std::string& name,
                               std::vector<int64_t> dims,
                               const v1::Constraint& constraint) {
  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::CREATE);
  request.set_dtype(v1::DT_DOUBLE);
  request.mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
  request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  *request.mutable_constraint() = constraint;
  return client.GetVariable(request).status();
}

TEST_F(UpdatesTest, ConstraintsApplyAfterEveryDenseStepInTheSameBatch) {
  v1::Constraint non_neg;
  non_neg.mutable_non_neg();
  VS_ASSERT_OK(CreateConstrained(*client_, "pos", {3}, non_neg));
  v1::Constraint max_norm;
  max_norm.mutable_max_norm()->set_max_value(1);
  max_norm.mutable_max_norm()->add_axis(0);
  VS_ASSERT_OK(CreateConstrained(*client_, "kernel", {2, 2}, max_norm));
  VS_ASSERT_OK_AND_ASSIGN(
      v1::BatchUpdateResponse r,
      Run({Apply("pos", Sgd(1), Doubles({3}, {1, -2, 0.5})),
           Apply("kernel", Sgd(1), Doubles({2, 2}, {-3, 0.1, -4, 0.2}))},
          /*return_values=*/true));
  // The batch's own result already holds the constrained values.
  VS_ASSERT_OK_AND_ASSIGN(Tensor pos, TensorFromProto(r.mutable_values(0)));
  EXPECT_THAT(Values(pos), ElementsAre(0, 2, 0));
  // Column norms over axis 0: (3, 4) has norm 5, scaled to 1; (-0.1, -0.2)
  // is below 1 and kept (up to Keras' epsilon).
  const double eps = 1e-7, small = std::sqrt(0.05);
  EXPECT_THAT(ReadValues("kernel"),
              Pointwise(DoubleNear(1e-15),
                        std::vector<double>{
                            3 / (eps + 5), -0.1 * small / (eps + small),
                            4 / (eps + 5), -0.2 * small / (eps + small)}));
  // Kept across a restart, and refused for a sparse step (as TensorFlow).
  VS_ASSERT_OK(server_.Restart());
  client_ = server_.NewClient();
  VS_ASSERT_OK(Run({Apply("pos", Sgd(1), Doubles({3}, {5, 5, 5}))}).status());
  EXPECT_THAT(ReadValues("pos"), ElementsAre(0, 0, 0));
  Create("emb", {3});
  EXPECT_THAT(
      Run({Apply("emb", Sgd(1), Doubles({3}, {1, 1, 1})),
           Apply("pos", Sgd(1), Doubles({1}, {-1}), std::vector<int64_t>{1})}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Cannot use a constraint function on a sparse variable: pos "
               "has a constraint and got a sparse gradient"));
  EXPECT_THAT(ReadValues("emb"), ElementsAre(0, 0, 0));
}

TEST_F(UpdatesTest, BadConstraintsAreRefusedAtCreation) {
  v1::Constraint c;
  c.mutable_unit_norm()->add_axis(2);
  EXPECT_THAT(CreateConstrained(*client_, "w", {2, 2}, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Constraint axis 2 is out of range for variable w of "
                       "rank 2"));
  c.mutable_unit_norm()->set_axis(0, -1);
  c.mutable_unit_norm()->add_axis(1);
  EXPECT_THAT(CreateConstrained(*client_, "w", {2, 2}, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Constraint axis 1 is repeated for variable w"));
  c.mutable_min_max_norm()->set_min_value(2);
  c.mutable_min_max_norm()->set_max_value(1);
  EXPECT_THAT(CreateConstrained(*client_, "w", {2, 2}, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid constraint min_value (above max_value): 2"));
  EXPECT_THAT(CreateConstrained(*client_, "w", {2, 2}, v1::Constraint()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::StartsWith("A constraint needs one of")));
  EXPECT_THAT(client_->Stat("w"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(UpdatesTest, AssignMulMultipliesElementWise) {
  Create("w", {2}, 3);
  v1::Update mul;
  mul.set_name("w");
  TensorToProto(Doubles({2}, {2, -0.5}), mul.mutable_assign_mul());
  VS_ASSERT_OK(Run({mul}).status());
  EXPECT_THAT(ReadValues("w"), ElementsAre(6, -1.5));
}

TEST_F(UpdatesTest, OptimizersRejectIntegersAndBadHyperParameters) {
  VariableScope scope;
  GetVariableOptions options;
  options.shape = std::vector<int64_t>{2};
  options.dtype = v1::DT_INT32;
  VS_ASSERT_OK(GetVariable(client_, scope, "i", options).status());
  v1::Optimizer sgd;
  sgd.set_learning_rate(0.1);
  sgd.mutable_gradient_descent();
  EXPECT_THAT(
      Run({Apply("i", sgd, Tensor(v1::DT_INT32, {2}))}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Optimizers train floating-point variables; i is int32"));
  Create("w", {2});
  v1::Optimizer bad = sgd;
  bad.set_learning_rate(-1);
  EXPECT_THAT(Run({Apply("w", bad, Doubles({2}, {1, 1}))}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid optimizer learning_rate: -1"));
  v1::Optimizer none;
  none.set_learning_rate(0.1);
  EXPECT_THAT(Run({Apply("w", none, Doubles({2}, {1, 1}))}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::StartsWith("No optimizer given")));
}

TEST(ExactlyOnce, RetriedUpdateAfterALostReplyIsAppliedOnce) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  VariableScope scope;
  GetVariableOptions options;
  options.shape = std::vector<int64_t>{};
  options.dtype = v1::DT_INT64;
  VS_ASSERT_OK_AND_ASSIGN(Variable step,
                          GetVariable(client, scope, "global_step", options));
  const int64_t one = 1;
  for (int i = 1; i <= 5; ++i) {
    // The server applies the update and drops its reply; the client retries
    // with the same id and gets the first result.
    server.ServiceForTest().DropUpdateRepliesForTest(1);
    VS_ASSERT_OK_AND_ASSIGN(
        UpdateResult r,
        step.AssignAdd(Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&one, 1}),
                       {.return_value = true}));
    EXPECT_EQ(r.value->flat<int64_t>()[0], i);
    EXPECT_EQ(r.version, i + 1);
  }
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("global_step"));
  EXPECT_EQ(read.value.flat<int64_t>()[0], 5);
  // Every update reached the server twice: the lost reply, then the retry.
  VS_ASSERT_OK_AND_ASSIGN(v1::ServerInfo info, client->GetServerInfo());
  EXPECT_EQ(info.updates(), 10);
}

TEST(ExactlyOnce, RepeatedIdIsADuplicateEvenAfterARestart) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  VariableScope scope;
  GetVariableOptions options;
  options.shape = std::vector<int64_t>{1};
  options.dtype = v1::DT_DOUBLE;
  options.initializer = v1::Initializer();
  options.initializer->set_kind(v1::Initializer::ZEROS);
  VS_ASSERT_OK(GetVariable(client, scope, "w", options).status());
  v1::BatchUpdateRequest request;
  v1::Update* u = request.add_updates();
  u->set_name("w");
  TensorToProto(Doubles({1}, {1}), u->mutable_assign_add());
  request.mutable_id()->set_client_id("worker-7");
  request.mutable_id()->set_sequence(1);
  VS_ASSERT_OK_AND_ASSIGN(v1::BatchUpdateResponse first,
                          client->BatchUpdate(request));
  EXPECT_FALSE(first.duplicate());
  VS_ASSERT_OK(server.Restart());
  client = server.NewClient();
  VS_ASSERT_OK_AND_ASSIGN(v1::BatchUpdateResponse again,
                          client->BatchUpdate(request));
  EXPECT_TRUE(again.duplicate());
  EXPECT_THAT(again.versions(), ElementsAre(2));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("w"));
  EXPECT_EQ(read.value.flat<double>()[0], 1);
  request.mutable_id()->set_sequence(0);
  EXPECT_THAT(client->BatchUpdate(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "An update's sequence must be positive, not 0"));
}

}  // namespace
}  // namespace varscope
