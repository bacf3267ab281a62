#include "common/names.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace varscope {
namespace {

bool IsFirstChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.';
}

bool IsLaterChar(char c) {
  return IsFirstChar(c) || c == '_' || c == '-' || c == '/';
}

std::string Printable(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u >= 0x7f) return absl::StrFormat("\\x%02x", u);
  return std::string(1, c);
}

std::string Quoted(absl::string_view name) {
  std::string out;
  for (char c : name.substr(0, 80)) out += Printable(c);
  if (name.size() > 80) out += "...";
  return absl::StrCat("'", out, "'");
}

}  // namespace

absl::Status ValidateName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("Invalid variable name '': empty name");
  }
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("Invalid variable name ", Quoted(name), ": ", name.size(),
                     " characters, more than the limit of ", kMaxNameLength));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool segment_start = i == 0 || name[i - 1] == '/';
    if (c == '/' && segment_start) {
      return absl::InvalidArgumentError(
          absl::StrCat("Invalid variable name ", Quoted(name),
                       ": empty scope segment at position ", i));
    }
    if (!(i == 0 ? IsFirstChar(c) : IsLaterChar(c))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Invalid variable name ", Quoted(name), ": character '", Printable(c),
          "' at position ", i,
          " is not allowed (names match [A-Za-z0-9.][A-Za-z0-9_.\\-/]*)"));
    }
  }
  if (name.back() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("Invalid variable name ", Quoted(name),
                     ": empty scope segment at position ", name.size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateScope(absl::string_view scope) {
  return scope.empty() ? absl::OkStatus() : ValidateName(scope);
}

std::string JoinName(absl::string_view scope, absl::string_view name) {
  if (scope.empty()) return std::string(name);
  return absl::StrCat(scope, "/", name);
}

absl::string_view LeafName(absl::string_view name) {
  const size_t slash = name.rfind('/');
  return slash == absl::string_view::npos ? name : name.substr(slash + 1);
}

bool IsUnderScope(absl::string_view name, absl::string_view scope) {
  if (scope.empty()) return !name.empty();
  return name.size() > scope.size() + 1 &&
         name.substr(0, scope.size()) == scope && name[scope.size()] == '/';
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min(
          {row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string NearMatches(absl::string_view name,
                        const std::vector<std::string>& candidates) {
  const absl::string_view leaf = LeafName(name);
  const size_t max_distance = std::clamp<size_t>(name.size() / 5, 1, 3);
  std::vector<absl::string_view> same_leaf;
  std::vector<std::pair<size_t, absl::string_view>> similar;
  for (const std::string& candidate : candidates) {
    if (candidate == name) continue;
    if (LeafName(candidate) == leaf) {
      same_leaf.push_back(candidate);
      continue;
    }
    const size_t len_diff = candidate.size() > name.size()
                                ? candidate.size() - name.size()
                                : name.size() - candidate.size();
    if (len_diff > max_distance) continue;
    const size_t d = EditDistance(candidate, name);
    if (d <= max_distance) similar.emplace_back(d, candidate);
  }
  constexpr size_t kMaxListed = 10;
  std::string out;
  if (!same_leaf.empty()) {
    if (same_leaf.size() > kMaxListed) same_leaf.resize(kMaxListed);
    absl::StrAppend(&out, " Variables named '", leaf,
                    "' exist at: ", absl::StrJoin(same_leaf, ", "));
  }
  if (!similar.empty()) {
    std::stable_sort(
        similar.begin(), similar.end(),
        [](const auto& a, const auto& b) { return a.first < b.first; });
    if (similar.size() > kMaxListed) similar.resize(kMaxListed);
    std::vector<absl::string_view> names;
    for (const auto& [d, n] : similar) names.push_back(n);
    absl::StrAppend(&out, out.empty() ? " " : ". ",
                    "Similar names: ", absl::StrJoin(names, ", "));
  }
  return out;
}

namespace {

// Strips a trailing `/leaf` from `name` when `matches(leaf)`.
template <typename Matches>
absl::string_view StripLeaf(absl::string_view name, Matches matches) {
  const size_t slash = name.rfind('/');
  if (slash == absl::string_view::npos) return name;
  return matches(name.substr(slash + 1)) ? name.substr(0, slash) : name;
}

bool IsSlotName(absl::string_view leaf) {
  return std::find(std::begin(kSlotNames), std::end(kSlotNames), leaf) !=
         std::end(kSlotNames);
}

bool IsPartName(absl::string_view leaf) {
  if (!absl::ConsumePrefix(&leaf, "part_") || leaf.empty()) return false;
  return std::all_of(leaf.begin(), leaf.end(), absl::ascii_isdigit);
}

}  // namespace

// FNV-1a, then SplitMix64's finalizer.
uint64_t StableHash(absl::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

absl::string_view ShardingName(absl::string_view name) {
  return StripLeaf(StripLeaf(name, IsSlotName), IsPartName);
}

int ShardOf(absl::string_view name, int num_shards) {
  const absl::string_view key = ShardingName(name);
  int best = 0;
  uint64_t best_score = 0;
  for (int i = 0; i < num_shards; ++i) {
    const uint64_t score =
        StableHash(key, 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(i + 1));
    if (i == 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

}  // namespace varscope
