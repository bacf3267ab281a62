// `varscope reshard`: moves a cluster's variables to the shards a new shard
// list places them on, and records the new list on every shard.
#ifndef VARSCOPE_CLIENT_CLI_RESHARD_H_
#define VARSCOPE_CLIENT_CLI_RESHARD_H_

#include <string>

#include "absl/status/status.h"
#include "client/cli/command.h"

namespace varscope::cli {

struct ReshardOptions {
  // The cluster's shards now, and after, HOST:PORT comma-separated in
  // cluster order.
  std::string from;
  std::string to;
  // The new cluster's id. Default: "" (derived from `to`, as varscoped's
  // --cluster-id).
  std::string cluster_id;
};

// Re-shards the cluster `from` into `to` (README "Many shards"): checks every
// shard's place first, then copies each variable whose shard changes (with
// its version, and the exactly-once records of its source) to its new shard,
// creates each embedding variable on every new shard and copies each row
// (with its slots, frequency and last step) to the shard its key maps to
// under the new count, records the new identity on every shard (the shards
// of `from` that `to` leaves out are marked removed), and deletes the moved
// variables' and rows' old copies. Safe to run again after an interruption:
// it recognises the shards already switched and redoes only what is
// missing. Prints what it moved. Errors, before anything changes:
// INVALID_ARGUMENT for a bad list, FAILED_PRECONDITION for a shard that is
// not where `from` says (or a new shard that holds variables or belongs to
// another cluster); a shard's error (UNAVAILABLE, PERMISSION_DENIED, ...)
// otherwise.
absl::Status Reshard(const CommandContext& context,
                     const ReshardOptions& options);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_RESHARD_H_
