// Name validation and the scope helpers of common/names.h on arbitrary
// strings: accepted names are exactly those of the documented grammar
// (checked by an independent matcher), rejected ones get INVALID_ARGUMENT,
// and the helpers keep their contracts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/names.h"
#include "tests/fuzz/fuzz_input.h"

namespace varscope::fuzz {
namespace {

// DESIGN.md §1: `[A-Za-z0-9.][A-Za-z0-9_.\-/]*`, no empty segment, at most
// kMaxNameLength bytes.
bool MatchesGrammar(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  auto alnum_or_dot = [](char c) {
    return ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') ||
           ('0' <= c && c <= '9') || c == '.';
  };
  if (!alnum_or_dot(name[0])) return false;
  for (char c : name) {
    if (!alnum_or_dot(c) && c != '_' && c != '-' && c != '/') return false;
  }
  for (absl::string_view segment : absl::StrSplit(name, '/')) {
    if (segment.empty()) return false;
  }
  return true;
}

// A string: raw bytes, or mostly name characters (with a few bad ones), up
// to a little over the length limit.
std::string FuzzString(FuzzInput& in) {
  if (in.InRange(0, 3) == 0) return in.Bytes(64);
  static constexpr char kAlphabet[] = "aZ09._-/a/b. \xff";
  std::string out(in.InRange(0, 3) == 0 ? in.InRange<size_t>(1000, 1030)
                                        : in.InRange<size_t>(0, 12),
                  'a');
  for (char& c : out) {
    c = kAlphabet[in.InRange<size_t>(0, sizeof(kAlphabet) - 1)];  // \0 too
    if (in.remaining() == 0) break;  // the rest stays 'a'
  }
  return out;
}

void Require(bool ok, absl::string_view what, absl::string_view name) {
  if (!ok) {
    FuzzFail(absl::StrCat(what, " for '", absl::CHexEscape(name.substr(0, 80)),
                          "'"));
  }
}

void CheckValidation(absl::string_view name) {
  const absl::Status status = ValidateName(name);
  Require(status.ok() == MatchesGrammar(name),
          status.ok() ? "ValidateName accepts outside the grammar"
                      : "ValidateName rejects a name of the grammar",
          name);
  Require(status.ok() || (status.code() == absl::StatusCode::kInvalidArgument &&
                          !status.message().empty()),
          "ValidateName's error is not INVALID_ARGUMENT with a message", name);
  Require(ValidateScope(name).ok() == (name.empty() || status.ok()),
          "ValidateScope disagrees with ValidateName", name);
  const absl::string_view sharding = ShardingName(name);
  Require(absl::StartsWith(name, sharding), "ShardingName is no prefix", name);
  for (int shards = 1; shards <= 5; ++shards) {
    const int shard = ShardOf(name, shards);
    Require(shard >= 0 && shard < shards, "ShardOf out of range", name);
  }
}

void CheckPair(absl::string_view scope, absl::string_view name) {
  if (ValidateName(scope).ok() && ValidateName(name).ok()) {
    const std::string joined = JoinName(scope, name);
    Require(IsUnderScope(joined, scope) && !IsUnderScope(scope, joined) &&
                LeafName(joined) == LeafName(name),
            "JoinName/IsUnderScope/LeafName disagree", joined);
    Require(ValidateName(joined).ok() == (joined.size() <= kMaxNameLength),
            "a join of valid names is not valid", joined);
  }
  Require(JoinName("", name) == name && !IsUnderScope(name, name),
          "JoinName with the root or IsUnderScope of itself", name);
  const absl::string_view a = scope.substr(0, 40), b = name.substr(0, 40);
  const size_t d = EditDistance(a, b);
  const size_t size_gap =
      a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  Require(d == EditDistance(b, a) && (d == 0) == (a == b) &&
              d <= std::max(a.size(), b.size()) && d >= size_gap,
          "EditDistance breaks a metric property", absl::StrCat(a, "|", b));
  for (size_t bound = 0; bound <= 4; ++bound) {
    const size_t bounded = EditDistance(a, b, bound);
    Require(d <= bound ? bounded == d : bounded > bound,
            "the bounded EditDistance disagrees", absl::StrCat(a, "|", b));
  }
}

void CheckNearMatches(absl::string_view name,
                      std::vector<std::string> candidates) {
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()),
                   candidates.end());
  const std::string help = NearMatches(name, candidates);
  Require(help.empty() || help[0] == ' ', "NearMatches lacks its space", name);
  const bool same_leaf = std::any_of(
      candidates.begin(), candidates.end(), [&](const std::string& c) {
        return c != name && LeafName(c) == LeafName(name);
      });
  Require(same_leaf == absl::StartsWith(
                           help, absl::StrCat(" Variables named '",
                                              LeafName(name), "' exist at: ")),
          "NearMatches misses or invents names with the same leaf", name);
  // So few names that the index's bounded search weighs them all.
  NameIndex index;
  for (const std::string& c : candidates) {
    index.Add(c);
    index.Add(c);
  }
  index.Remove(name);
  Require(index.NearMatchCandidates(name) == candidates,
          "NameIndex does not give every name of a small index", name);
  // Each name added twice is there until removed twice.
  for (const std::string& c : candidates) index.Remove(c);
  const size_t left =
      candidates.size() - static_cast<size_t>(std::count(
                              candidates.begin(), candidates.end(), name));
  Require(index.size() == left, "NameIndex miscounts repeated names", name);
}

}  // namespace
}  // namespace varscope::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  varscope::fuzz::FuzzInput in(data, size);
  std::vector<std::string> strings;
  while (!in.empty() && strings.size() < 16) {
    strings.push_back(varscope::fuzz::FuzzString(in));
  }
  for (const std::string& s : strings) varscope::fuzz::CheckValidation(s);
  for (size_t i = 1; i < strings.size(); ++i) {
    varscope::fuzz::CheckPair(strings[i - 1], strings[i]);
  }
  if (!strings.empty()) {
    varscope::fuzz::CheckNearMatches(
        strings[0],
        std::vector<std::string>(strings.begin() + 1, strings.end()));
  }
  return 0;
}
