// The version of this build: the project's version (CMakeLists.txt, the one
// place it is written) and the git commit it was built from, generated at
// build time (cmake/GenerateVersion.cmake).
#ifndef VARSCOPE_COMMON_VERSION_H_
#define VARSCOPE_COMMON_VERSION_H_

#include <string>

#include "absl/strings/string_view.h"

namespace varscope {

// "0.1.0".
absl::string_view Version();
// The abbreviated commit, "-dirty" appended when the tree had uncommitted
// changes; "unknown" when not built from a git checkout.
absl::string_view GitCommit();
// What `PROGRAM --version` prints (without a newline):
// "PROGRAM 0.1.0 (commit 0123456789ab)".
std::string VersionLine(absl::string_view program);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_VERSION_H_
