// Test fixture for the admin CLI: a TestServer, a client to populate it,
// and Run() of `varscope` with captured stdin, stdout and stderr.
#ifndef VARSCOPE_TESTS_CLI_CLI_FIXTURE_H_
#define VARSCOPE_TESTS_CLI_CLI_FIXTURE_H_

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "client/cli/cli.h"
#include "client/client.h"
#include "common/tensor.h"
#include "gtest/gtest.h"
#include "tests/testing/test_server.h"

namespace varscope::cli::testing {

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs `varscope args...` with `input` on stdin and every environment
// variable unset except those in `env`. Output goes to `out` when given
// (the result's `out` is then empty). `terminal`: stderr is a terminal.
CliResult RunCli(const std::vector<std::string>& args,
                 const std::string& input = "",
                 const std::map<std::string, std::string>& env = {},
                 std::ostream* out = nullptr, bool terminal = false);

// A float32 tensor.
Tensor Floats(std::vector<int64_t> dims, std::vector<float> values);

// The stdout of the program `argv[0]` (an absolute path) run with `argv`;
// fails the test if it does not exit 0.
std::string RunProgram(const std::vector<std::string>& argv);

// RunProgram of `/usr/bin/python3 -c script args...` (which has numpy).
std::string RunPython(const std::string& script,
                      const std::vector<std::string>& args = {});

class CliTest : public ::testing::Test {
 protected:
  // Runs `varscope --server <this server> args...`.
  CliResult Run(std::vector<std::string> args, const std::string& input = "",
                bool terminal = false);

  // Creates `name` (CREATE mode, zeros with seed 7, or `partitions` parts
  // along axis 0) and assigns `value` to it: its version is then 2.
  void Put(const std::string& name, const Tensor& value,
           std::optional<int64_t> partitions = std::nullopt);

  // A small model: global_step, model/dense/{bias,kernel},
  // model/my_scope/weights, model/emb (2 parts), opt/model/dense/kernel/Adam.
  void Populate();

  ::varscope::testing::TestServer server_;
  std::shared_ptr<Client> client_ = server_.NewClient();
};

}  // namespace varscope::cli::testing

#endif  // VARSCOPE_TESTS_CLI_CLI_FIXTURE_H_
