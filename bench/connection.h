// One load client's connection to a store under test (Varscope or Redis),
// with the benchmark's operations written as a user of that store would.
#ifndef VARSCOPE_BENCH_CONNECTION_H_
#define VARSCOPE_BENCH_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace varscope::bench {

// Values are float32 vectors held as their little-endian bytes.
//
// Not thread-safe: every load client owns one connection (its own TCP
// connection to the server).
class Connection {
 public:
  virtual ~Connection() = default;

  // Makes `key` hold `value`, creating it if missing.
  virtual absl::Status Prepare(const std::string& key,
                               const std::string& value) = 0;
  // Reads `key`; FAILED_PRECONDITION unless it holds `expected_bytes`.
  virtual absl::Status Read(const std::string& key, size_t expected_bytes) = 0;
  // Overwrites `key` with `value`.
  virtual absl::Status Write(const std::string& key,
                             const std::string& value) = 0;
  // Adds `delta` to `key` element-wise, without losing concurrent additions
  // (unless the connection was made lossy, see ConnectRedis).
  virtual absl::Status Accumulate(const std::string& key,
                                  const std::string& delta) = 0;
  // One training step: pulls every key, then adds grads[i] to keys[i].
  virtual absl::Status TrainStep(const std::vector<std::string>& keys,
                                 const std::vector<std::string>& grads) = 0;

  // Makes `key` a float32 table of `rows` x `width`, zero-filled when
  // created. Varscope only: UNIMPLEMENTED elsewhere.
  virtual absl::Status PrepareTable(const std::string& key, int64_t rows,
                                    int64_t width);
  // Reads the rows `indices` of table `key`.
  virtual absl::Status Gather(const std::string& key,
                              const std::vector<int64_t>& indices);
  // Adds `rows` (one row per index) to the rows `indices` of table `key`.
  virtual absl::Status Scatter(const std::string& key,
                               const std::vector<int64_t>& indices,
                               const std::string& rows);
  // One sparse Adagrad step (learning rate 0.01) on the rows `indices` of
  // table `key` with the gradient `grads` (one row per index), its
  // accumulator slot included.
  virtual absl::Status SparseAdagrad(const std::string& key,
                                     const std::vector<int64_t>& indices,
                                     const std::string& grads);

  // Attempts repeated because a concurrent writer got in between (Redis
  // WATCH conflicts); 0 for stores that update in place.
  virtual int64_t conflicts() const { return 0; }
};

// A connection to varscoped at `address` (HOST:PORT) through
// varscope::Client, on a TCP connection of its own.
absl::StatusOr<std::unique_ptr<Connection>> ConnectVarscope(
    const std::string& address);

// How Redis read-modify-writes (Accumulate, TrainStep) run.
enum class RedisUpdate {
  // WATCH + GET/MGET, then MULTI + SET/MSET + EXEC, repeated on a conflict:
  // no addition is lost, as with assign_add.
  kWatch,
  // GET/MGET then SET/MSET: concurrent additions may be lost.
  kLossy,
};

// A connection to redis-server at `address` (HOST:PORT) through hiredis.
absl::StatusOr<std::unique_ptr<Connection>> ConnectRedis(
    const std::string& address, RedisUpdate update);

// Adds the float32 vector `delta` to `value` element-wise.
// REQUIRES: delta.size() == value.size(), a multiple of 4.
void AddFloats(const std::string& delta, std::string& value);

}  // namespace varscope::bench

#endif  // VARSCOPE_BENCH_CONNECTION_H_
