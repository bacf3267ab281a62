// Variable and scope names: `[A-Za-z0-9.][A-Za-z0-9_.\-/]*`, segments joined
// with '/', no empty segment, at most kMaxNameLength bytes.
#ifndef VARSCOPE_COMMON_NAMES_H_
#define VARSCOPE_COMMON_NAMES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

// Levenshtein distance between a and b.
size_t EditDistance(absl::string_view a, absl::string_view b);

// Help for a missing `name`, given the existing names `candidates` (unique, in
// name order): " Variables named 'leaf' exist at: a/leaf, b/leaf" for the
// same leaf under other scopes, and "Similar names: ..." for small edit
// distances (at most 10 of each, closest first); "" if nothing is close.
std::string NearMatches(absl::string_view name,
                        const std::vector<std::string>& candidates);

// The leaf names of the slot variables server-side optimizers keep next to a
// variable `w` (`w/Momentum`, `w/Adam_1`, ...).
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

// The name that decides where `name` lives in a cluster of shards: a slot
// (`w/Adagrad`) and a part of a partitioned variable (`w/part_3`, and its
// slots) go with their variable `w`, so that one server holds them all.
absl::string_view ShardingName(absl::string_view name);

// A fixed, well-mixed 64-bit hash of `bytes`: the same in every process,
// platform and version.
uint64_t StableHash(absl::string_view bytes, uint64_t seed);

// The shard, in [0, num_shards), that holds `name`: rendezvous hashing of
// ShardingName(name) over the shard indices, so that every client with the
// same shard list agrees, and removing the last shard moves only its names.
// Stable across processes, platforms and versions. REQUIRES: num_shards > 0.
int ShardOf(absl::string_view name, int num_shards);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_NAMES_H_
