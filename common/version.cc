#include "common/version.h"

#include "absl/strings/str_cat.h"
#include "common/version_info.h"

namespace varscope {

absl::string_view Version() { return VARSCOPE_VERSION_STRING; }

absl::string_view GitCommit() { return VARSCOPE_GIT_COMMIT_STRING; }

std::string VersionLine(absl::string_view program) {
  return absl::StrCat(program, " ", Version(), " (commit ", GitCommit(), ")");
}

}  // namespace varscope
