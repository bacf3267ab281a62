// An Estimator-style worker: calls model_fn once per step, as Estimator does
// when it builds graphs for training and evaluation, against a shared
// Varscope server.
//
//   estimator_worker --server=127.0.0.1:7070 --worker=a --steps=5
//
// It first reproduces the classic failure: model_fn calls get_variable at
// the root with the default reuse, so its second call fails with
// TensorFlow's "already exists, disallowed". Then it runs the fix, model_fn
// under variable_scope("linear", reuse=AUTO_REUSE): every call, in every
// worker process, gets the same variables.
#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"

namespace {

using varscope::Client;
using varscope::GetVariable;
using varscope::GetVariableOptions;
using varscope::Reuse;
using varscope::ScopeArgs;
using varscope::ScopeStack;
using varscope::Tensor;
using varscope::Variable;

struct Model {
  Variable weights;
  Variable bias;
};

// The model function: the variables of a linear model in the current scope.
absl::StatusOr<Model> ModelFn(std::shared_ptr<Client> client,
                              const ScopeStack& scopes) {
  GetVariableOptions weights;
  weights.shape = std::vector<int64_t>{10, 1};
  weights.initializer = varscope::v1::Initializer();
  weights.initializer->set_kind(varscope::v1::Initializer::GLOROT_UNIFORM);
  weights.initializer->set_seed(42);
  auto w = GetVariable(client, *scopes.current(), "weights", weights);
  if (!w.ok()) return w.status();
  GetVariableOptions bias;
  bias.shape = std::vector<int64_t>{1};
  bias.initializer = varscope::v1::Initializer();
  bias.initializer->set_kind(varscope::v1::Initializer::ZEROS);
  auto b = GetVariable(client, *scopes.current(), "bias", bias);
  if (!b.ok()) return b.status();
  return Model{*std::move(w), *std::move(b)};
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "estimator_worker: %s\n", status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:7070";
  std::string worker = "0";
  int steps = 5;
  CLI::App app{"An Estimator-style worker against a Varscope server"};
  app.add_option("--server", server, "varscoped address")
      ->capture_default_str();
  app.add_option("--worker", worker, "this worker's name")
      ->capture_default_str();
  app.add_option("--steps", steps, "model_fn calls")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::shared_ptr<Client> client = Client::Connect(server);

  // 1. The broken version: plain get_variable, reuse left at its default.
  {
    ScopeStack scopes;
    const std::string scope = absl::StrCat("seed_article/worker_", worker);
    (void)client->Delete(scope, /*recursive=*/true);  // a clean demo
    if (auto s = scopes.Enter(ScopeArgs{.name = scope}); !s.ok()) {
      return Fail(s.status());
    }
    auto first = ModelFn(client, scopes);
    if (!first.ok()) return Fail(first.status());
    auto second = ModelFn(client, scopes);
    std::printf("[worker %s] without reuse, model_fn call 1: ok; call 2: %s\n",
                worker.c_str(), second.status().ToString().c_str());
    if (second.status().code() != absl::StatusCode::kAlreadyExists) {
      return Fail(absl::InternalError("expected ALREADY_EXISTS"));
    }
  }

  // 2. The fix: variable_scope("linear", reuse=AUTO_REUSE).
  ScopeStack scopes;
  auto linear =
      scopes.Enter(ScopeArgs{.name = "linear", .reuse = Reuse::kAutoReuse});
  if (!linear.ok()) return Fail(linear.status());
  for (int step = 0; step < steps; ++step) {
    auto model = ModelFn(client, scopes);
    if (!model.ok()) return Fail(model.status());
    if (step == 0) {
      std::printf("[worker %s] with AUTO_REUSE: %s %s\n", worker.c_str(),
                  model->weights.name().c_str(),
                  model->weights.created()
                      ? "created"
                      : "found (created by another worker)");
    }
    // A training step's update: bias += 1 (atomic on the server).
    const float one = 1.0f;
    auto updated = model->bias.AssignAdd(
        Tensor::FromVector<float>(varscope::v1::DT_FLOAT, {1}, {&one, 1}),
        {.return_value = true});
    if (!updated.ok()) return Fail(updated.status());
    std::printf("[worker %s] step %d: linear/bias = %g (version %lld)\n",
                worker.c_str(), step, updated->value->flat<float>()[0],
                static_cast<long long>(updated->version));
  }
  auto weights = client->Read("linear/weights");
  if (!weights.ok()) return Fail(weights.status());
  std::printf("[worker %s] linear/weights[0..2] = %g %g %g\n", worker.c_str(),
              weights->value.flat<float>()[0], weights->value.flat<float>()[1],
              weights->value.flat<float>()[2]);
  return 0;
}
