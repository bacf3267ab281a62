// Inspection commands: show, get, diagnose.
#ifndef VARSCOPE_CLIENT_CLI_INSPECT_H_
#define VARSCOPE_CLIENT_CLI_INSPECT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/cli/command.h"
#include "common/dtype.h"

namespace varscope::cli {

struct ShowOptions {
  // A variable, a part, or a partitioned variable (parts NAME/part_i).
  std::string name;
  // Print every value instead of the first 10. Default: false.
  bool full = false;
  // An embedding variable: list this many of its most frequent keys.
  // Default: 10.
  int hottest = 10;
};

// Prints a variable's metadata (dtype, shape, size, version, trainable,
// initializer with its seed, times, slice; a partitioned variable's parts)
// and statistics of its value (see ValueStats) with a histogram and the
// first values. For an embedding variable: its options, keys in memory and
// on disk (count and bytes), admission and eviction counters and its
// hottest keys. NOT_FOUND (listing similar names) if nothing is named so.
absl::Status Show(const CommandContext& context, const ShowOptions& options);

struct GetOptions {
  std::string name;  // as ShowOptions::name
};

// Prints a variable's whole value as nested lists (JSON: name, dtype, shape,
// version, values). NOT_FOUND as Show.
absl::Status Get(const CommandContext& context, const GetOptions& options);

struct DiagnoseOptions {
  std::string name;
  // The shape and dtype the caller passes to get_variable; unset: not
  // checked (shape=None; the variable's own dtype).
  std::optional<std::vector<int64_t>> shape;
  std::optional<DType> dtype;
};

// Explains what get_variable(name, reuse=True) does: asks the server (a
// REUSE call never creates anything), then reports the variable if it
// exists, the same name under outer scopes, the name without its outer
// scopes, the same leaf under other scopes, the closest names by edit
// distance, partitioned parts name/part_*, and variables under name/, each
// with dtype and shape, and a hint. Reads every name on the server once.
// Returns OK when the call would succeed, else the server's error for it
// (NOT_FOUND when the variable is missing, INVALID_ARGUMENT on a shape or
// dtype mismatch).
absl::Status Diagnose(const CommandContext& context,
                      const DiagnoseOptions& options);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_INSPECT_H_
