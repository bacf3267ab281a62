// What every command of the admin CLI runs with.
#ifndef VARSCOPE_CLIENT_CLI_COMMAND_H_
#define VARSCOPE_CLIENT_CLI_COMMAND_H_

#include <cstdint>
#include <istream>
#include <memory>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "client/client.h"
#include "common/transport.h"

namespace varscope::cli {

// Commands write their results to `out`, questions, progress and warnings
// to `err`, and read answers from `in`; none of them is owned. A command
// returns OK or the status whose code picks the exit code (see cli.h);
// on error it may have written part of its output.
struct CommandContext {
  std::shared_ptr<Client> client;
  // The server's HOST:PORT, for commands that open their own channel.
  std::string server_address;
  // TLS and token of every channel.
  ClientSecurity security;
  // Deadline of each call. Default: 30 seconds.
  absl::Duration timeout = absl::Seconds(30);
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::istream* in = nullptr;
  // Print JSON instead of text. Default: false.
  bool json = false;
  // Draw progress bars on `err` (when it is a terminal). Default: false.
  bool progress = false;
  // Entries per ListVariables page; 0 is the server's default (1000).
  int32_t page_size = 0;
};

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_COMMAND_H_
