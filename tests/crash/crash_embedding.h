// The crash harness's embedding writer (kind "embed"), shared by the writer
// (crash_writer.cc) and the checks (crash_test.cc). Write N of a writer:
//   1. a lookup (counted, at global step N) of the 4 lookup keys
//      LookupKey(LookupRow(N, j)), j = 0..3, and of LookupKey(kLookupKeys
//      + N), looked up this once: a lookup key is admitted (filter_freq 2)
//      at its second lookup and stored with its initial row, which no
//      update changes;
//   2. a sparse Adagrad step (learning rate 1, initial accumulator 1) with
//      gradient -1 on the 4 update keys UpdateKey(UpdateRow(N, j)), at
//      global step N, numbered N for exactly-once application. The 256
//      update keys were imported at 0 before the first step (frequency 2),
//      so each update key's frequency is 2 + the steps that touched it.
// Keys are spread over the int64 range, negative and extreme ones included.
#ifndef VARSCOPE_TESTS_CRASH_CRASH_EMBEDDING_H_
#define VARSCOPE_TESTS_CRASH_CRASH_EMBEDDING_H_

#include <cstdint>
#include <limits>

namespace varscope::crash {

constexpr int64_t kEmbedDim = 4;
constexpr int64_t kEmbedFilterFreq = 2;
constexpr int64_t kUpdateKeys = 256;
constexpr int64_t kLookupKeys = 64;
constexpr int64_t kEmbedTouched = 4;  // keys of each kind per write
// The initializer's seed, the same for the twin variable that the checks
// read initial rows from.
constexpr int64_t kEmbedSeed = 7;

inline int64_t UpdateRow(int64_t n, int64_t j) {
  return (7 * n + 64 * j) % kUpdateKeys;
}
inline int64_t LookupRow(int64_t n, int64_t j) {
  return (5 * n + 16 * j) % kLookupKeys;
}
// Odd multiples of the golden ratio's bits: distinct, most of them
// negative or beyond 2^62.
inline int64_t UpdateKey(int64_t row) {
  return static_cast<int64_t>(static_cast<uint64_t>(2 * row + 1) *
                              0x9E3779B97F4A7C15ull);
}
// Even numbers from the smallest int64 up, so never an update key.
inline int64_t LookupKey(int64_t row) {
  return std::numeric_limits<int64_t>::min() + 2 * row;
}

}  // namespace varscope::crash

#endif  // VARSCOPE_TESTS_CRASH_CRASH_EMBEDDING_H_
