// Compiled against an installed varscope: calls a server that is not there
// (a Unix socket path nobody listens on, given as the argument) and checks
// that the client answers UNAVAILABLE naming the call.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "client/client.h"
#include "client/variable_scope.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: app unix:PATH\n";
    return 2;
  }
  varscope::ClientOptions options;
  options.max_attempts = 1;
  std::shared_ptr<varscope::Client> client =
      varscope::Client::Connect(argv[1], options);
  varscope::ScopeStack scopes;
  varscope::GetVariableOptions get;
  get.shape = std::vector<int64_t>{2};
  absl::StatusOr<varscope::Variable> w =
      varscope::GetVariable(client, *scopes.current(), "w", get);
  std::cout << w.status() << "\n";
  return absl::IsUnavailable(w.status()) &&
                 absl::StartsWith(w.status().message(), "GetVariable of w: ")
             ? 0
             : 1;
}
