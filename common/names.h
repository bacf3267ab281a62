// Variable and scope names: `[A-Za-z0-9.][A-Za-z0-9_.\-/]*`, segments joined
// with '/', no empty segment, at most kMaxNameLength bytes.
#ifndef VARSCOPE_COMMON_NAMES_H_
#define VARSCOPE_COMMON_NAMES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace varscope {

inline constexpr size_t kMaxNameLength = 1024;

// OK for a valid full name. Otherwise INVALID_ARGUMENT naming the offending
// character and its position, the empty segment, or the length.
absl::Status ValidateName(absl::string_view name);

// As ValidateName, but "" (the root scope) is also valid.
absl::Status ValidateScope(absl::string_view scope);

// `scope/name`, or `name` when scope is the root "".
std::string JoinName(absl::string_view scope, absl::string_view name);

// The last segment: "b" for "a/b".
absl::string_view LeafName(absl::string_view name);

// True if `name` lies strictly under `scope` ("" contains every name).
bool IsUnderScope(absl::string_view name, absl::string_view scope);

// OK if `old_name` (a variable or a scope) may be renamed to `new_name`:
// both valid names, neither the other nor inside it. Else INVALID_ARGUMENT.
absl::Status ValidateRename(absl::string_view old_name,
                            absl::string_view new_name);

// Levenshtein distance between a and b when it is at most `at_most`, else
// some larger number; costs O(min(at_most, |a|) * |b|).
size_t EditDistance(absl::string_view a, absl::string_view b,
                    size_t at_most = SIZE_MAX);

// Help for a missing `name`, given the existing names `candidates` (unique, in
// name order): " Variables named 'leaf' exist at: a/leaf, b/leaf" for the
// same leaf under other scopes, and "Similar names: ..." for small edit
// distances (at most 10 of each, closest first); "" if nothing is close.
// Weighs every candidate: pass NameIndex::NearMatchCandidates to bound it.
std::string NearMatches(absl::string_view name,
                        const std::vector<std::string>& candidates);

// Names indexed so that the NearMatches of a missing name cost the same
// whatever their number: by name, by leaf, and by scope then leaf read
// backwards. A name may be added several times (the whole of a partitioned
// variable, once per part) and is indexed while added more often than
// removed. Thread-compatible.
class NameIndex {
 public:
  // How many names NearMatchCandidates takes on each side of a missing name
  // in each order.
  static constexpr size_t kWindow = 256;

  NameIndex();
  ~NameIndex();
  NameIndex(const NameIndex&) = delete;
  NameIndex& operator=(const NameIndex&) = delete;

  // Adds one occurrence of `name`.
  void Add(absl::string_view name);
  // Removes one occurrence of `name`; nothing if it holds none.
  void Remove(absl::string_view name);
  // How many distinct names it holds.
  size_t size() const;

  // The names NearMatches(name, ...) weighs, unique and in name order: the
  // first 11 with the same leaf in name order (the 10 listed, whichever
  // `name` is), and the kWindow names on each side of `name` in name order
  // (a typo after a long common prefix) and in order of scope then leaf
  // read backwards (a typo at the start of a leaf). At most 11 + 4 * kWindow
  // names, found in O(log size()); every name when size() <= kWindow.
  std::vector<std::string> NearMatchCandidates(absl::string_view name) const;

 private:
  // A name and its leaf (a suffix of it): views of a key of counts_, whose
  // std::map nodes do not move.
  struct Entry {
    absl::string_view leaf;
    absl::string_view name;
    // By leaf, then name.
    bool operator<(const Entry& other) const {
      return std::tie(leaf, name) < std::tie(other.leaf, other.name);
    }
  };
  // By scope, then leaf read backwards.
  struct ByEnding {
    bool operator()(const Entry& a, const Entry& b) const;
  };
  // Each name and how many times it is added.
  std::map<std::string, int64_t, std::less<>> counts_;
  absl::btree_set<Entry> by_leaf_;
  absl::btree_set<Entry, ByEnding> by_ending_;
};

// TensorFlow's default optimizer names, in the order of v1::Optimizer's
// kinds. An optimizer names its slot variables of a variable `w` after its
// name: `w/Momentum`, `w/Adam` and `w/Adam_1` (see SlotName).
inline constexpr absl::string_view kOptimizerNames[] = {
    "GradientDescent", "Momentum", "Adagrad", "Adam", "RMSProp", "Ftrl"};

// The leaf name of slot `index` (from 0) of an optimizer called `optimizer`:
// `optimizer`, then `optimizer_1`, ... (TensorFlow's slot creator
// uniquifies so).
std::string SlotName(absl::string_view optimizer, int index);

// The leaf names of the slot variables the optimizers of kOptimizerNames
// keep next to a variable `w` (`w/Momentum`, `w/Adam_1`, ...), and Adam's
// beta powers as TensorFlow names them. tests/server/table_pieces_test.cc
// ties them to the optimizers.
inline constexpr absl::string_view kSlotNames[] = {"Momentum",
                                                   "Adagrad",
                                                   "Adam",
                                                   "Adam_1",
                                                   "Adam_beta1_power",
                                                   "Adam_beta2_power",
                                                   "RMSProp",
                                                   "RMSProp_1",
                                                   "RMSProp_2",
                                                   "Ftrl",
                                                   "Ftrl_1"};

// True if `leaf` is one of kSlotNames.
bool IsSlotName(absl::string_view leaf);

// The variable whose shard decides where `name` lives in a cluster of
// shards: a slot (`w/Adagrad`) goes with its variable `w`, and a part of a
// partitioned variable (`w/part_3`, and its slots) is placed from `w`'s
// shard (see ShardOf).
absl::string_view ShardingName(absl::string_view name);

// A fixed, well-mixed 64-bit hash of `bytes`: the same in every process,
// platform and version.
uint64_t StableHash(absl::string_view bytes, uint64_t seed);

// The shard, in [0, num_shards), that holds `name`: rendezvous hashing of
// ShardingName(name) over the shard indices, so that every client with the
// same shard list agrees, and removing the last shard moves only its names;
// part i of a partitioned variable (`w/part_i`, with its slots) goes i
// shards further, round the list, so that the parts spread over the shards
// with part 0 on `w`'s own (its home shard). Stable across processes,
// platforms and versions. REQUIRES: num_shards > 0.
int ShardOf(absl::string_view name, int num_shards);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_NAMES_H_
