#include "client/cli/glob.h"

#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace varscope::cli {
namespace {

// `*` and `?` within one segment (no '/' on either side).
bool SegmentMatch(absl::string_view pattern, absl::string_view text) {
  size_t p = 0, t = 0;
  size_t star = absl::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool SegmentsMatch(const std::vector<absl::string_view>& pattern, size_t p,
                   const std::vector<absl::string_view>& name, size_t n) {
  if (p == pattern.size()) return n == name.size();
  if (pattern[p] == "**") {
    // Zero or more whole segments; a run of `**` is one `**`.
    for (size_t skip = n; skip <= name.size(); ++skip) {
      if (SegmentsMatch(pattern, p + 1, name, skip)) return true;
    }
    return false;
  }
  return n < name.size() && SegmentMatch(pattern[p], name[n]) &&
         SegmentsMatch(pattern, p + 1, name, n + 1);
}

}  // namespace

bool GlobMatch(absl::string_view pattern, absl::string_view name) {
  const std::vector<absl::string_view> p = absl::StrSplit(pattern, '/');
  const std::vector<absl::string_view> n = absl::StrSplit(name, '/');
  return SegmentsMatch(p, 0, n, 0);
}

std::string GlobScope(absl::string_view pattern) {
  std::vector<absl::string_view> segments = absl::StrSplit(pattern, '/');
  segments.pop_back();
  std::vector<absl::string_view> literal;
  for (absl::string_view s : segments) {
    if (s.find_first_of("*?") != absl::string_view::npos) break;
    literal.push_back(s);
  }
  return absl::StrJoin(literal, "/");
}

}  // namespace varscope::cli
