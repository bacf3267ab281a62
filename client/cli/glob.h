// Glob patterns over variable names: `*` matches any run of characters
// within one segment, `?` one character other than '/', and a segment that
// is exactly `**` matches zero or more whole segments.
#ifndef VARSCOPE_CLIENT_CLI_GLOB_H_
#define VARSCOPE_CLIENT_CLI_GLOB_H_

#include <string>

#include "absl/strings/string_view.h"

namespace varscope::cli {

// True if `pattern` matches all of `name`.
bool GlobMatch(absl::string_view pattern, absl::string_view name);

// The scope every match of `pattern` lies under: its leading segments free
// of wildcards, without the last segment ("" when the first has one).
// "model/**/Adam*" -> "model"; "*/weights" -> ""; "a/b/c" -> "a/b".
std::string GlobScope(absl::string_view pattern);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_GLOB_H_
