// Server-wide commands: stats, health.
#ifndef VARSCOPE_CLIENT_CLI_SERVER_COMMANDS_H_
#define VARSCOPE_CLIENT_CLI_SERVER_COMMANDS_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/cli/command.h"

namespace varscope::cli {

struct StatsOptions {
  // GetServerInfo is sampled twice this far apart to measure calls per
  // second; 0 reports only averages since the server started.
  // Default: 1 second.
  absl::Duration interval = absl::Seconds(1);
};

// Prints the server's version, start time and uptime, variable count and
// bytes, and its Read, update (Assign, AssignAdd) and GetVariable calls:
// totals, per second over the sampling interval, and per second since
// start. Server errors as Client.
absl::Status Stats(const CommandContext& context, const StatsOptions& options);

// Asks the standard grpc.health.v1.Health/Check (service "") and prints the
// answer: SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN. Returns OK for
// SERVING, UNAVAILABLE for the others, and the call's error (UNAVAILABLE
// when the server is down, DEADLINE_EXCEEDED) otherwise. Of a cluster it
// asks every shard at once (whatever their order) and prints one line per
// shard, "ADDRESS STATE" or "ADDRESS CODE: message" when the call failed;
// OK only if every shard is SERVING, else UNAVAILABLE naming the others.
absl::Status Health(const CommandContext& context);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_SERVER_COMMANDS_H_
