// Browsing commands: ls, tree, find, du.
#ifndef VARSCOPE_CLIENT_CLI_BROWSE_H_
#define VARSCOPE_CLIENT_CLI_BROWSE_H_

#include <string>

#include "absl/status/status.h"
#include "client/cli/command.h"

namespace varscope::cli {

struct LsOptions {
  // The scope to list; "" is the root. Default: "".
  std::string scope;
  // Every variable under the scope instead of its children. Default: false.
  bool recursive = false;
  // When > 0: scopes and variables down to this many levels below the scope
  // (1 is the children); wins over `recursive`. Default: 0.
  int depth = 0;
  // One full name per line (scopes end with '/'), no header. Default: false.
  bool names_only = false;
};

// Prints the children of a scope (kind, dtype, shape, bytes, version, full
// name) in name order, page by page as the server sends them: output starts
// after the first page whatever the scope's size, and memory holds one page
// per level. Listing a variable's name prints that variable. NOT_FOUND if
// nothing is named so or under it.
absl::Status Ls(const CommandContext& context, const LsOptions& options);

struct TreeOptions {
  std::string scope;  // Default: "" (the root)
  // When > 0: print this many levels below the scope; deeper variables
  // still count in the totals. Default: 0 (all).
  int depth = 0;
};

// Prints the hierarchy under a scope, each scope with its variable count
// and total bytes, each variable with dtype, shape and bytes. Reads the
// listing page by page and keeps per-scope totals and the printed
// variables. NOT_FOUND as Ls.
absl::Status Tree(const CommandContext& context, const TreeOptions& options);

struct FindOptions {
  // A glob over full names (see glob.h): "*/weights", "model/**/Adam*".
  std::string pattern;
  bool names_only = false;  // as LsOptions::names_only
};

// Prints the variables whose full names match, streaming as Ls. Lists only
// under the pattern's leading literal segments. NOT_FOUND if none matches.
absl::Status Find(const CommandContext& context, const FindOptions& options);

struct DuOptions {
  std::string scope;  // Default: "" (the root)
  int depth = 0;      // when > 0: scopes down to this many levels
};

// Prints the bytes and variable count of the scope and of every scope under
// it, largest first (ties by name). NOT_FOUND as Ls.
absl::Status Du(const CommandContext& context, const DuOptions& options);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_BROWSE_H_
