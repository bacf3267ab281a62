// The `varscope` admin CLI as a library: parses a command line with CLI11,
// picks the server, runs one command (browse.h, inspect.h, edit.h,
// transfer.h, server_commands.h) and maps its status to an exit code.
// main() only calls Run with the process's environment.
#ifndef VARSCOPE_CLIENT_CLI_CLI_H_
#define VARSCOPE_CLIENT_CLI_CLI_H_

#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/transport.h"

namespace varscope::cli {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitNotFound = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitError = 3;

// kExitOk for OK, kExitNotFound for NOT_FOUND, kExitUsage for
// INVALID_ARGUMENT (a bad name, value, shape or option), kExitError for
// every other code (server down, deadline, conflicts, cancelled, ...).
int ExitCode(const absl::Status& status);

// What a run reads, writes and looks up; the streams are not owned.
struct Environment {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::istream* in = nullptr;
  // The value of an environment variable; nullopt when unset.
  std::function<std::optional<std::string>(const std::string&)> getenv;
  // Progress bars are drawn on `err` only when it is a terminal.
  bool err_is_terminal = false;
};

// std::cout, std::cerr, std::cin, ::getenv and isatty(2).
Environment ProcessEnvironment();

// The server to use: `flag` when given, else $VARSCOPE_SERVER, else the
// addresses of `cluster.ps` in $TF_CONFIG (a cluster: comma-separated, in
// order), else 127.0.0.1:7070.
// INVALID_ARGUMENT if TF_CONFIG is consulted and is not JSON, or its
// cluster.ps is not a list of strings.
absl::StatusOr<std::string> ResolveServerAddress(
    const std::optional<std::string>& flag, const Environment& env);

// TLS and the token from the flags (`tls_ca_file`, `token_file`; "" when not
// given), else $VARSCOPE_TLS_CA (a file) and $VARSCOPE_TOKEN (the token).
// INVALID_ARGUMENT (a usage error) if a file cannot be read.
absl::StatusOr<ClientSecurity> ResolveSecurity(const std::string& tls_ca_file,
                                               const std::string& token_file,
                                               const Environment& env);

// Runs `varscope args...` (without the program name) and returns the exit
// code. --help (on the program or any command) prints to env.out and
// returns 0; usage errors print CLI11's message to env.err and return
// kExitUsage; a failed command prints "varscope CMD: CODE: message" to
// env.err and returns ExitCode of its status.
int Run(const std::vector<std::string>& args, const Environment& env);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_CLI_H_
