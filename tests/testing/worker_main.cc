// varscope_test_worker: a client process for multi-process tests.
//   varscope_test_worker get ADDRESS NAME
//     AUTO_REUSE get_variable(NAME, [64, 8]) and prints
//     "created=0|1 digest=HASH" (HASH of the value's bytes).
//   varscope_test_worker add ADDRESS NAME COUNT
//     COUNT times assign_add(1) to the int64 scalar NAME (created if
//     missing), printing "acked VERSION" after each acknowledged update.
//   varscope_test_worker train ADDRESS NAME...
//     Until SIGTERM, applies training steps, each one BatchUpdate (default
//     client options) that adds 1 to every NAME: an int64 scalar by
//     assign_add, a float64 [4] (NAME containing "float") by a gradient
//     descent step of learning rate 1 and gradient -1. The variables must
//     exist. Prints "step N UNIX_MICROS" after each, then "done N".
//   varscope_test_worker sync ADDRESS LAST WORKER REPLICAS WAIT NAME...
//     Synchronous steps (accumulator "sync", REPLICAS to aggregate) until
//     the global step reaches LAST: contributes, at the global step's value,
//     a gradient descent gradient (learning rate 1) of WORKER + 1 for every
//     float NAME, dense, or, for a part (NAME containing "/part_"), sparse on
//     row WORKER only, then waits for the next step up to WAIT seconds (a
//     wait that times out reads the global step again and contributes to
//     it). Prints "step K OUTCOME" after each contribution for global step
//     K, then "done".
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "client/variable_scope.h"
#include "common/status.h"
#include "tests/testing/updates.h"

namespace {

volatile sig_atomic_t stop = 0;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "varscope_test_worker: %s\n", status.ToString().c_str());
  return 1;
}

// The `train` command's step.
varscope::v1::BatchUpdateRequest TrainingStep(char** names, int count) {
  using namespace varscope;
  v1::BatchUpdateRequest step;
  for (int i = 0; i < count; ++i) {
    const std::string name = names[i];
    if (!absl::StrContains(name, "float")) {
      const int64_t one = 1;
      *step.add_updates() = testing::WholeUpdate(
          name, Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&one, 1}),
          /*add=*/true);
      continue;
    }
    const double minus_one[4] = {-1, -1, -1, -1};
    v1::Update* update = step.add_updates();
    update->set_name(name);
    v1::ApplyGradient* apply = update->mutable_apply_gradient();
    apply->mutable_optimizer()->set_learning_rate(1);
    apply->mutable_optimizer()->mutable_gradient_descent();
    TensorToProto(Tensor::FromVector<double>(v1::DT_DOUBLE, {4}, minus_one),
                  apply->mutable_gradient());
  }
  return step;
}

// The `sync` command's contribution for `step`.
absl::StatusOr<varscope::v1::SyncApplyRequest> SyncContribution(
    varscope::Client& client, int64_t step, int worker, int replicas,
    char** names, int count) {
  using namespace varscope;
  v1::SyncApplyRequest request;
  request.set_accumulator("sync");
  request.set_step(step);
  request.set_replicas_to_aggregate(replicas);
  for (int i = 0; i < count; ++i) {
    VS_ASSIGN_OR_RETURN(v1::VariableInfo info, client.Stat(names[i]));
    std::vector<int64_t> dims(info.shape().dims().begin(),
                              info.shape().dims().end());
    v1::Update* update = request.add_updates();
    update->set_name(names[i]);
    v1::ApplyGradient* apply = update->mutable_apply_gradient();
    apply->mutable_optimizer()->set_learning_rate(1);
    apply->mutable_optimizer()->mutable_gradient_descent();
    if (absl::StrContains(names[i], "/part_")) {
      dims[0] = 1;
      const int64_t row = worker;
      TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {1}, {&row, 1}),
                    apply->mutable_indices());
    }
    Tensor gradient(info.dtype(), dims);
    if (info.dtype() == v1::DT_DOUBLE) {
      for (double& x : gradient.mutable_flat<double>()) x = worker + 1;
    } else {
      for (float& x : gradient.mutable_flat<float>()) x = worker + 1;
    }
    TensorToProto(std::move(gradient), apply->mutable_gradient());
  }
  return request;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace varscope;
  if (argc < 4) return 2;
  const std::string command = argv[1];
  std::shared_ptr<Client> client = Client::Connect(argv[2]);
  VariableScope scope;
  scope.reuse = Reuse::kAutoReuse;
  GetVariableOptions options;
  if (command == "get") {
    options.shape = std::vector<int64_t>{64, 8};
    auto var = GetVariable(client, scope, argv[3], options);
    if (!var.ok()) return Fail(var.status());
    auto value = var->Read();
    if (!value.ok()) return Fail(value.status());
    std::printf("created=%d digest=%zu\n", var->created() ? 1 : 0,
                std::hash<std::string>()(value->bytes()));
    return 0;
  }
  if (command == "train") {
    signal(SIGTERM, [](int) { stop = 1; });
    const v1::BatchUpdateRequest step = TrainingStep(argv + 3, argc - 3);
    int64_t steps = 0;
    while (!stop) {
      const absl::Status status = client->BatchUpdate(step).status();
      if (!status.ok()) return Fail(status);
      std::printf("step %lld %lld\n", static_cast<long long>(++steps),
                  static_cast<long long>(absl::ToUnixMicros(absl::Now())));
      std::fflush(stdout);
    }
    std::printf("done %lld\n", static_cast<long long>(steps));
    return 0;
  }
  int64_t count = 0;
  int worker = 0;
  int replicas = 0;
  int wait = 0;
  if (command == "sync" && argc > 7 && absl::SimpleAtoi(argv[3], &count) &&
      absl::SimpleAtoi(argv[4], &worker) &&
      absl::SimpleAtoi(argv[5], &replicas) &&
      absl::SimpleAtoi(argv[6], &wait)) {
    auto global_step = [&]() -> absl::StatusOr<int64_t> {
      VS_ASSIGN_OR_RETURN(ReadResult read, client->Read("global_step"));
      // A copy first: GCC 12 takes the tensor's bytes for uninitialized.
      int64_t value = 0;
      memcpy(&value, read.value.bytes().data(), sizeof(value));
      return value;
    };
    absl::StatusOr<int64_t> step = global_step();
    while (step.ok() && *step < count) {
      auto contribution = SyncContribution(*client, *step, worker, replicas,
                                           argv + 7, argc - 7);
      if (!contribution.ok()) return Fail(contribution.status());
      auto reply = client->SyncApply(*std::move(contribution));
      if (!reply.ok()) return Fail(reply.status());
      std::printf(
          "step %lld %s\n", static_cast<long long>(*step),
          v1::SyncApplyResponse::Outcome_Name(reply->outcome()).c_str());
      std::fflush(stdout);
      absl::StatusOr<int64_t> next =
          client->WaitForStep("global_step", *step + 1, absl::Seconds(wait));
      step = absl::IsDeadlineExceeded(next.status()) ? global_step() : next;
    }
    if (!step.ok()) return Fail(step.status());
    std::printf("done\n");
    return 0;
  }
  if (command == "add" && argc == 5 && absl::SimpleAtoi(argv[4], &count)) {
    options.shape = std::vector<int64_t>{};
    options.dtype = v1::DT_INT64;
    auto var = GetVariable(client, scope, argv[3], options);
    if (!var.ok()) return Fail(var.status());
    const int64_t one = 1;
    for (int64_t i = 0; i < count; ++i) {
      auto result = var->AssignAdd(
          Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&one, 1}));
      if (!result.ok()) return Fail(result.status());
      std::printf("acked %lld\n", static_cast<long long>(result->version));
      std::fflush(stdout);
    }
    return 0;
  }
  return 2;
}
