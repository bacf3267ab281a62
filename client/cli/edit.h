// Repair commands: set, rm, mv.
#ifndef VARSCOPE_CLIENT_CLI_EDIT_H_
#define VARSCOPE_CLIENT_CLI_EDIT_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "client/cli/command.h"

namespace varscope::cli {

struct SetOptions {
  // A variable or a partitioned variable.
  std::string name;
  // Exactly one of:
  // JSON text (see ParseValue): nested lists matching the variable's shape,
  // or one element for every element.
  std::optional<std::string> value;
  // A .npy file of the variable's dtype (float32 for bfloat16) and shape.
  std::optional<std::string> npy_path;
};

// Replaces a variable's value (a partitioned variable part by part) and
// prints its new version. NOT_FOUND if it does not exist; INVALID_ARGUMENT
// if the value does not parse or does not fit its dtype and shape (nothing
// is written then).
absl::Status Set(const CommandContext& context, const SetOptions& options);

struct RmOptions {
  std::string name;
  // Also every variable under `name/`; asks for confirmation on `in`
  // unless `yes`. Default: false.
  bool recursive = false;
  bool yes = false;
  // Print what would be deleted; delete nothing. Default: false.
  bool dry_run = false;
};

// Deletes a variable, or (recursive) it and everything under it in one
// atomic server call, and prints how many went. NOT_FOUND (with similar
// names) if nothing is named so or under it; CANCELLED if the confirmation
// is not "y" or "yes" (nothing is deleted).
absl::Status Rm(const CommandContext& context, const RmOptions& options);

struct MvOptions {
  std::string old_name;
  std::string new_name;
};

// Renames a variable, or a whole scope, atomically (Client::Rename):
// concurrent readers see every old name or every new one. NOT_FOUND if
// nothing is named `old_name`; ALREADY_EXISTS if a new name is taken;
// INVALID_ARGUMENT for a bad name or a move into itself.
absl::Status Mv(const CommandContext& context, const MvOptions& options);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_EDIT_H_
