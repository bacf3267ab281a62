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

// Prints the server's version and commit, start time and uptime, variable
// count and bytes, and its Read, update (Assign, AssignAdd) and GetVariable
// calls: totals, per second over the sampling interval, and per second
// since start. Of a cluster (a list of shards): that block for every shard
// in list order, then the totals (sums; the earliest start; shard 0's
// version); JSON {"shards": [...], "total": {...}}. Server errors as Client;
// a shard's error is prefixed with "Shard ADDRESS: ".
absl::Status Stats(const CommandContext& context, const StatsOptions& options);

struct TopOptions {
  // The variables watched: everything under this scope. Default: all.
  std::string scope;
  // Time between refreshes. Default: 1 second.
  absl::Duration interval = absl::Seconds(1);
  // Refreshes before returning; 0: until interrupted. Default: 0.
  int64_t count = 0;
  // The most variables listed per refresh; 0: all. Default: 20.
  int32_t limit = 20;
};

// Live per-variable update rates, like `redis-cli --stat`: every interval,
// one header line ("TIME  N of M variables updated in the last Xs") and the
// variables updated meanwhile, busiest first ("RATE/s  NAME"), from the
// change of their versions (each update adds 1). JSON: one object per
// refresh. Errors: listing's (NOT_FOUND for a missing scope).
absl::Status Top(const CommandContext& context, const TopOptions& options);

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
