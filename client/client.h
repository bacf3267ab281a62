// varscope::Client: the RPC client of one varscoped server.
#ifndef VARSCOPE_CLIENT_CLIENT_H_
#define VARSCOPE_CLIENT_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/names.h"
#include "common/tensor.h"
#include "common/transport.h"
#include "common/variable_ops.h"
#include "varscope/v1/variable_service.grpc.pb.h"

namespace varscope {

struct ClientOptions {
  // Deadline of each attempt of a call. Default: 30 seconds.
  absl::Duration timeout = absl::Seconds(30);
  // Attempts of an idempotent call (GetVariable with REUSE or AUTO_REUSE,
  // reads, listings, and updates numbered for exactly-once application)
  // that fails with UNAVAILABLE, with exponential backoff between them.
  // Other calls are attempted once.
  // Default: 5.
  int max_attempts = 5;
  // Backoff before the first retry, doubling up to max_backoff.
  // Default: 50 ms and 2 s.
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // Number every update (assign, assign_add, batch) under this client's id
  // so the server applies it exactly once, and retry it like an idempotent
  // call. Default: true.
  bool exactly_once = true;
  // Assign and AssignAdd send tensors larger than this by WriteStream, in
  // messages of stream_chunk_bytes; Read falls back to ReadStream when the
  // server says a variable is too large for one message.
  // Default: 64 MiB and 2 MiB.
  int64_t stream_threshold_bytes = int64_t{64} << 20;
  int64_t stream_chunk_bytes = int64_t{2} << 20;
  // TLS and the token of every channel. Default: plaintext, no token.
  ClientSecurity security;
  // Connect: open a TCP connection of this client's own rather than share
  // one with the other clients of the same address in this process (as
  // separate worker processes would). Default: false.
  bool own_connection = false;
};

// Thread-safe. Every method returns the server's status unchanged (codes as
// DESIGN.md §4), DEADLINE_EXCEEDED after options.timeout, or UNAVAILABLE
// when the server cannot be reached.
//
// On a cluster, calls on one name go to its shard; listings, scope reads and
// recursive deletes visit every shard and merge; a batch update is split
// into one atomic batch per shard (applied shard by shard: an error may leave
// the earlier shards' batches applied). Rename is UNIMPLEMENTED on a
// cluster, and a synchronous-replica contribution needs its variables and
// global step on one shard (FAILED_PRECONDITION otherwise).
class Client {
 public:
  // A client of the server at `address` (HOST:PORT), or of a cluster of
  // shards: `address` lists them, comma-separated, in the cluster's order
  // (the order the shards were started with, see varscoped's --cluster).
  // Each variable then lives on the shard ShardOf(name) picks (a
  // partitioned variable's parts and an optimizer's slots go with their
  // variable). Does not wait for a connection: an unreachable server shows
  // as UNAVAILABLE on the first call. With several shards, the first call
  // checks the cluster first (see CheckCluster) and fails with its error.
  // With one address the client talks to that server whatever its place in
  // a cluster (to administer one shard, e.g. back it up).
  static std::unique_ptr<Client> Connect(const std::string& address,
                                         const ClientOptions& options = {});

  // A client of the shards behind `shards`, in cluster order, reached at
  // `addresses` (named in errors; default: "shard 0", "shard 1", ...).
  Client(
      std::vector<std::shared_ptr<v1::VariableService::StubInterface>> shards,
      const ClientOptions& options, std::vector<std::string> addresses = {});

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The index of the shard that calls on `name` go to (0 for one server).
  int ShardFor(absl::string_view name) const {
    return ShardOf(name, num_shards());
  }

  // With several shards: asks every shard for its cluster identity (see
  // GetServerInfo) and checks that the shard at position i of this client's
  // list is shard i of as many in one cluster. OK at once with one shard,
  // and after the first success. FAILED_PRECONDITION naming the shard, its
  // place and the cluster's order otherwise ("Shard list mismatch: ..."),
  // or the error of asking a shard.
  absl::Status CheckCluster();

  // TensorFlow's get_variable for a full name (see VariableTable).
  absl::StatusOr<v1::GetVariableResponse> GetVariable(
      const v1::GetVariableRequest& request);
  absl::StatusOr<ReadResult> Read(absl::string_view name);
  absl::StatusOr<UpdateResult> Assign(absl::string_view name, Tensor value,
                                      const UpdateOptions& options = {});
  absl::StatusOr<UpdateResult> AssignAdd(absl::string_view name, Tensor delta,
                                         const UpdateOptions& options = {});
  // One page; pass response.next_page_token() back for the next.
  absl::StatusOr<v1::ListVariablesResponse> ListVariables(
      const v1::ListVariablesRequest& request);
  absl::StatusOr<v1::VariableInfo> Stat(absl::string_view name);
  // Returns how many variables were deleted.
  absl::StatusOr<int64_t> Delete(absl::string_view name, bool recursive);
  // Renames a variable or a whole scope atomically; returns how many
  // variables were renamed.
  absl::StatusOr<int64_t> Rename(absl::string_view old_name,
                                 absl::string_view new_name);
  // The server's info; on a cluster the shards' totals, with the earliest
  // start time and shard 0's cluster identity.
  absl::StatusOr<v1::ServerInfo> GetServerInfo();

  // Applies the updates atomically (see VariableTable::BatchUpdate). With
  // options.exactly_once and no id in `request`, numbers it.
  absl::StatusOr<v1::BatchUpdateResponse> BatchUpdate(
      v1::BatchUpdateRequest request);
  // Contributes gradients to a synchronous step (see SyncApplyRequest). With
  // options.exactly_once and no id in `request`, numbers it, so a retried
  // contribution counts once.
  absl::StatusOr<v1::SyncApplyResponse> SyncApply(v1::SyncApplyRequest request);
  // Waits until the global step (default "global_step" when empty) is at
  // least `step` and returns its value; DEADLINE_EXCEEDED after `timeout`.
  absl::StatusOr<int64_t> WaitForStep(absl::string_view global_step,
                                      int64_t step, absl::Duration timeout);
  // The variables as of one moment, by names or by scope.
  absl::StatusOr<v1::BatchReadResponse> BatchRead(
      const v1::BatchReadRequest& request);
  // Rows of `name` by index; `indices` is a 1-D int32 or int64 tensor.
  absl::StatusOr<ReadResult> Gather(absl::string_view name,
                                    const Tensor& indices);

  // This client's id for exactly-once updates (random per client).
  const std::string& client_id() const { return client_id_; }

 private:
  // After CheckCluster, runs `call(context)` with a fresh deadline
  // (options.timeout, or `timeout`) per attempt, retrying UNAVAILABLE when
  // `idempotent`.
  template <typename Call>
  absl::Status Run(bool idempotent, Call call);
  template <typename Call>
  absl::Status Run(bool idempotent, Call call, absl::Duration timeout);
  // Run without CheckCluster.
  template <typename Call>
  absl::Status Attempt(bool idempotent, Call call, absl::Duration timeout);
  // The cluster identity of every shard.
  absl::StatusOr<std::vector<v1::ServerInfo>> ServerInfos();

  // Whether an update of `tensor` goes by WriteStream.
  bool StreamIt(const Tensor& tensor, const UpdateOptions& options) const;
  absl::StatusOr<ReadResult> ReadByStream(const v1::ReadRequest& request);
  absl::StatusOr<UpdateResult> WriteByStream(v1::StreamHeader header,
                                             const Tensor& tensor,
                                             bool idempotent);
  // Sets the next exactly-once id on `id` when options.exactly_once; returns
  // whether the update may be retried.
  bool Identify(v1::UpdateId* id);

  int num_shards() const { return static_cast<int>(shards_.size()); }
  // Every name on shard `shard`, and the whole of each partitioned variable,
  // in name order.
  absl::StatusOr<std::vector<std::string>> NamesOn(int shard);
  // On a cluster, a NOT_FOUND `status` for `name` from its shard, whose
  // message ends with that shard's near matches (see NearMatches), with the
  // near matches of every shard instead; else `status`.
  absl::Status WithClusterNearMatches(absl::string_view name,
                                      absl::Status status);
  // The stub of the shard that holds `name`.
  v1::VariableService::StubInterface& Shard(absl::string_view name) const;

  const std::vector<std::shared_ptr<v1::VariableService::StubInterface>>
      shards_;
  std::vector<std::string> addresses_;
  const ClientOptions options_;
  // Whether CheckCluster succeeded (or has nothing to check).
  std::atomic<bool> cluster_checked_;
  const std::string client_id_;
  std::atomic<int64_t> sequence_{0};
};

}  // namespace varscope

#endif  // VARSCOPE_CLIENT_CLIENT_H_
