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
#include "common/status.h"

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

// How many names of each kind NearMatches lists.
constexpr size_t kMaxListed = 10;

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

absl::Status ValidateRename(absl::string_view old_name,
                            absl::string_view new_name) {
  VS_RETURN_IF_ERROR(ValidateName(old_name));
  VS_RETURN_IF_ERROR(ValidateName(new_name));
  if (old_name == new_name || IsUnderScope(new_name, old_name) ||
      IsUnderScope(old_name, new_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot rename ", old_name, " to ", new_name,
                     ": one is the other or lies inside it"));
  }
  return absl::OkStatus();
}

size_t EditDistance(absl::string_view a, absl::string_view b, size_t at_most) {
  const size_t gap =
      a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (gap > at_most) return at_most + 1;
  // Only cells within `bound` of the diagonal can lead to a distance within
  // it; the others stay `over`.
  const size_t bound = std::min(at_most, std::max(a.size(), b.size()));
  const size_t over = bound + 1;
  std::vector<size_t> row(b.size() + 1, over);
  for (size_t j = 0; j <= std::min(bound, b.size()); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    const size_t lo = i > bound ? i - bound : 1;
    const size_t hi = std::min(b.size(), i + bound);
    size_t diag = row[lo - 1];
    row[lo - 1] = lo == 1 ? std::min(i, over) : over;
    size_t best = row[lo - 1];
    for (size_t j = lo; j <= hi; ++j) {
      const size_t up = row[j];
      row[j] = std::min({up + 1, row[j - 1] + 1,
                         diag + (a[i - 1] == b[j - 1] ? 0 : 1), over});
      diag = up;
      best = std::min(best, row[j]);
    }
    if (best > bound) return over;
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
    const size_t d = EditDistance(candidate, name, max_distance);
    if (d <= max_distance) similar.emplace_back(d, candidate);
  }
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

// The scope of `name` whose leaf is `leaf`: "a/b" for "a/b/c", "" for "c".
absl::string_view ScopeOf(absl::string_view name, absl::string_view leaf) {
  return name.substr(0, name.size() - std::min(name.size(), leaf.size() + 1));
}

// Adds the names of the `n` elements of `set` before `it` and of the `n`
// from `it` on.
template <typename Set, typename NameOf>
void AddAround(const Set& set, typename Set::const_iterator it, size_t n,
               NameOf name_of, std::vector<absl::string_view>& out) {
  auto back = it;
  for (size_t i = 0; i < n && back != set.begin(); ++i) {
    --back;
    out.push_back(name_of(*back));
  }
  for (size_t i = 0; i < n && it != set.end(); ++i, ++it) {
    out.push_back(name_of(*it));
  }
}

}  // namespace

bool NameIndex::ByEnding::operator()(const Entry& a, const Entry& b) const {
  const absl::string_view scope_a = ScopeOf(a.name, a.leaf);
  const absl::string_view scope_b = ScopeOf(b.name, b.leaf);
  if (scope_a != scope_b) return scope_a < scope_b;
  return std::lexicographical_compare(a.leaf.rbegin(), a.leaf.rend(),
                                      b.leaf.rbegin(), b.leaf.rend());
}

NameIndex::NameIndex() = default;
NameIndex::~NameIndex() = default;

void NameIndex::Add(absl::string_view name) {
  auto [it, added] = counts_.try_emplace(std::string(name), 0);
  ++it->second;
  if (!added) return;
  const absl::string_view key = it->first;
  by_leaf_.emplace(LeafName(key), key);
  by_ending_.insert({LeafName(key), key});
}

void NameIndex::Remove(absl::string_view name) {
  auto it = counts_.find(name);
  if (it == counts_.end() || --it->second > 0) return;
  const absl::string_view key = it->first;
  by_leaf_.erase({LeafName(key), key});
  by_ending_.erase({LeafName(key), key});
  counts_.erase(it);
}

size_t NameIndex::size() const { return counts_.size(); }

std::vector<std::string> NameIndex::NearMatchCandidates(
    absl::string_view name) const {
  std::vector<absl::string_view> found;
  const absl::string_view leaf = LeafName(name);
  for (auto it = by_leaf_.lower_bound({leaf, absl::string_view()});
       it != by_leaf_.end() && it->leaf == leaf && found.size() <= kMaxListed;
       ++it) {
    found.push_back(it->name);
  }
  AddAround(
      counts_, counts_.lower_bound(name), kWindow,
      [](const auto& entry) { return absl::string_view(entry.first); }, found);
  AddAround(
      by_ending_, by_ending_.lower_bound({leaf, name}), kWindow,
      [](const Entry& entry) { return entry.name; }, found);
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return std::vector<std::string>(found.begin(), found.end());
}

namespace {

// Strips a trailing `/leaf` from `name` when `matches(leaf)`.
template <typename Matches>
absl::string_view StripLeaf(absl::string_view name, Matches matches) {
  const size_t slash = name.rfind('/');
  if (slash == absl::string_view::npos) return name;
  return matches(name.substr(slash + 1)) ? name.substr(0, slash) : name;
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

std::string SlotName(absl::string_view optimizer, int index) {
  return index == 0 ? std::string(optimizer)
                    : absl::StrCat(optimizer, "_", index);
}

bool IsSlotName(absl::string_view leaf) {
  return std::find(std::begin(kSlotNames), std::end(kSlotNames), leaf) !=
         std::end(kSlotNames);
}

absl::string_view ShardingName(absl::string_view name) {
  return StripLeaf(StripLeaf(name, IsSlotName), IsPartName);
}

int ShardOf(absl::string_view name, int num_shards) {
  const absl::string_view part = StripLeaf(name, IsSlotName);
  const absl::string_view key = StripLeaf(part, IsPartName);
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
  if (part.size() == key.size()) return best;
  // Part i goes i shards after its variable's, its index taken modulo
  // num_shards digit by digit (it may have any number of digits).
  int offset = 0;
  for (const char c : part.substr(key.size() + sizeof("/part_") - 1)) {
    offset = (offset * 10 + (c - '0')) % num_shards;
  }
  return (best + offset) % num_shards;
}

}  // namespace varscope
