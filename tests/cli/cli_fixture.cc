#include "tests/cli/cli_fixture.h"

#include <sys/wait.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/variable.h"
#include "common/status.h"

namespace varscope::cli::testing {

CliResult RunCli(const std::vector<std::string>& args, const std::string& input,
                 const std::map<std::string, std::string>& env,
                 std::ostream* out, bool terminal) {
  std::ostringstream captured_out, captured_err;
  std::istringstream in(input);
  Environment environment;
  environment.out = out != nullptr ? out : &captured_out;
  environment.err = &captured_err;
  environment.in = &in;
  environment.getenv =
      [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  environment.err_is_terminal = terminal;
  CliResult result;
  result.code = Run(args, environment);
  result.out = captured_out.str();
  result.err = captured_err.str();
  return result;
}

Tensor Floats(std::vector<int64_t> dims, std::vector<float> values) {
  return Tensor::FromVector<float>(v1::DT_FLOAT, std::move(dims), values);
}

std::string RunProgram(const std::vector<std::string>& argv) {
  absl::StatusOr<std::unique_ptr<::varscope::testing::ChildProcess>> child =
      ::varscope::testing::ChildProcess::Start(argv);
  EXPECT_TRUE(child.ok()) << child.status();
  if (!child.ok()) return "";
  std::string out;
  for (;;) {
    absl::StatusOr<std::string> line = (*child)->ReadLine();
    if (!line.ok()) break;
    absl::StrAppend(&out, *line, "\n");
  }
  const int status = (*child)->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << argv[0] << " failed (wait status " << status << "); output:\n"
      << out;
  return out;
}

std::string RunPython(const std::string& script,
                      const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/python3", "-c", script};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv);
}

CliResult CliTest::Run(std::vector<std::string> args, const std::string& input,
                       bool terminal) {
  args.insert(args.begin(), {"--server", server_.address()});
  return RunCli(args, input, {}, nullptr, terminal);
}

void CliTest::Put(const std::string& name, const Tensor& value,
                  std::optional<int64_t> partitions) {
  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::CREATE);
  request.set_dtype(value.dtype());
  request.mutable_shape()->mutable_dims()->Assign(value.dims().begin(),
                                                  value.dims().end());
  request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  request.mutable_initializer()->set_seed(7);
  if (partitions.has_value()) {
    request.mutable_partitioner()->mutable_fixed_size()->set_num_shards(
        *partitions);
  }
  absl::StatusOr<v1::GetVariableResponse> response =
      client_->GetVariable(request);
  ASSERT_TRUE(response.ok()) << response.status();
  absl::StatusOr<UpdateResult> assigned =
      Variable(client_, *std::move(response)).Assign(value);
  ASSERT_TRUE(assigned.ok()) << assigned.status();
}

void CliTest::Populate() {
  Put("global_step",
      Tensor::FromVector<int64_t>(v1::DT_INT64, {}, std::vector<int64_t>{42}));
  Put("model/dense/bias", Floats({2}, {0.5f, -0.5f}));
  Put("model/dense/kernel", Floats({3, 2}, {1, 2, 3, 4, 5, 6}));
  Put("model/my_scope/weights",
      Floats({10, 1},
             {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f}));
  Put("model/emb", Floats({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}), 2);
  Put("opt/model/dense/kernel/Adam", Floats({3, 2}, {0, 0, 0, 0, 0, 1}));
}

}  // namespace varscope::cli::testing
