// Copies of a server's whole store: checkpoint and backup (on the server's
// machine, through its AdminService) and restore (local, no server).
#ifndef VARSCOPE_CLIENT_CLI_STORE_COMMANDS_H_
#define VARSCOPE_CLIENT_CLI_STORE_COMMANDS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "client/cli/command.h"

namespace varscope::cli {

struct CopyOptions {
  // A path on the server's machine under its --backup-root (a relative one
  // is taken under the root): the new checkpoint directory, or the backup
  // directory.
  std::string directory;
  // Also print every variable's version in the copy. Default: false.
  bool versions = false;
};

// Asks the server for a consistent checkpoint of its store in `directory`
// (which must not exist; it becomes an openable data directory) and prints
// what it holds. Waits up to an hour, or context.timeout if longer. Server
// errors (INVALID_ARGUMENT for a relative path, ALREADY_EXISTS) as returned.
absl::Status Checkpoint(const CommandContext& context,
                        const CopyOptions& options);

struct BackupOptions : CopyOptions {
  // Then delete the oldest backups so that the newest `keep` remain (never
  // the new one); 0 keeps them all. Default: 0.
  uint32_t keep = 0;
};

// Asks the server to add a consistent, incremental backup of its store to
// the backup directory `directory` and prints it, and the backups `keep`
// deleted. Waits as Checkpoint. Nothing is deleted if the backup fails.
absl::Status Backup(const CommandContext& context,
                    const BackupOptions& options);

struct RestoreOptions {
  // A backup directory (see Backup) or a checkpoint.
  std::string source;
  // The data directory to create; must be missing or empty.
  std::string data_dir;
  // The backup to restore; 0 is the latest. Default: 0.
  uint32_t backup_id = 0;
  // Or the backup of this cluster cut (a cluster backup's id, the same on
  // every shard). Default: empty.
  std::string cut;
  // List the backups in `source` instead of restoring. Default: false.
  bool list = false;
};

// On this machine, without a server: restores a backup (or copies a
// checkpoint) into a new data directory, checks that every variable loads,
// and prints what it holds (and which shard of which cluster, for a shard's
// store) and how to serve it. INVALID_ARGUMENT if `source` is not a
// directory, FAILED_PRECONDITION if data_dir is not empty, NOT_FOUND for a
// missing backup, DATA_LOSS for a damaged one. With `list`, prints the
// backups in `source` instead.
absl::Status Restore(const CommandContext& context,
                     const RestoreOptions& options);

// Completes the steps that workers left half applied on the cluster
// `--server` lists (RecoverSteps: every intent, whatever its age), after
// checking that the shards are the cluster's in its order, and prints how
// many it completed and which it dropped ("Dropped step 17 of client C:
// ..."). JSON {"completed": N, "dropped": [...]}. FAILED_PRECONDITION for a
// single server ("Recovery needs the cluster's shard list ...") or
// a list in another order; the first error that may pass otherwise (the
// intents it could not complete are kept for the next run).
absl::Status Recover(const CommandContext& context);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_STORE_COMMANDS_H_
