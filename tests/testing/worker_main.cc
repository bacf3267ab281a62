// varscope_test_worker: a client process for multi-process tests.
//   varscope_test_worker get ADDRESS NAME
//     AUTO_REUSE get_variable(NAME, [64, 8]) and prints
//     "created=0|1 digest=HASH" (HASH of the value's bytes).
//   varscope_test_worker add ADDRESS NAME COUNT
//     COUNT times assign_add(1) to the int64 scalar NAME (created if
//     missing), printing "acked VERSION" after each acknowledged update.
#include <cstdio>
#include <functional>
#include <string>

#include "absl/strings/numbers.h"
#include "client/variable_scope.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "varscope_test_worker: %s\n", status.ToString().c_str());
  return 1;
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
  int64_t count = 0;
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
