// varscope::Client: the RPC client of one varscoped server.
#ifndef VARSCOPE_CLIENT_CLIENT_H_
#define VARSCOPE_CLIENT_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/names.h"
#include "common/tensor.h"
#include "common/transport.h"
#include "common/variable_ops.h"
#include "varscope/v1/variable_service.grpc.pb.h"

namespace varscope {

struct ClientOptions {
  // Deadline of each attempt of a call. A server that does not answer in
  // time (hung, e.g. stopped, or overloaded) fails the call with
  // DEADLINE_EXCEEDED naming the server and the call; it is not retried.
  // Default: 30 seconds.
  absl::Duration timeout = absl::Seconds(30);
  // How long a call that is safe to retry keeps retrying UNAVAILABLE (a
  // server restarting, unreachable or refusing for a while), counted from
  // its first attempt; then it fails with UNAVAILABLE naming the server and
  // the call. Safe to retry: reads, listings, GetVariable with REUSE or
  // AUTO_REUSE, GetVariable with CREATE (see GetVariable), and updates
  // numbered for exactly-once application. Other calls are attempted once.
  // Default: 60 seconds.
  absl::Duration retry_timeout = absl::Seconds(60);
  // At most this many attempts of such a call, whatever retry_timeout
  // leaves. Default: no limit.
  int max_attempts = std::numeric_limits<int>::max();
  // Backoff before the first retry, doubling up to max_backoff, each pause
  // drawn uniformly from [backoff/2, backoff]. The channel reconnects on its
  // own schedule (every 0.5 s at most while a server is down), so a call
  // succeeds within about max_backoff + 0.5 s of the server serving again.
  // Default: 50 ms and 250 ms.
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Milliseconds(250);
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
  // Sent with every call as `varscope-pause-id` metadata: this client's
  // changes pass the cluster pause of that id (AdminService.Pause) while it
  // holds, as the pause's holder's own changes (e.g. moving variables under
  // the pause). Default: empty, none.
  std::string pause_id;
  // A client of several shards, once it checked the cluster (its first
  // call), completes the steps that workers left half applied whose intents
  // are at least this old (RecoverSteps in admin_client.h): a worker
  // restarted after a crash completes what it left, while live workers'
  // steps under way are left to them. Best effort: an error (e.g.
  // PERMISSION_DENIED for a token without the write role over every name)
  // is ignored, and a later client, a consistent cut or `varscope recover`
  // tries again. absl::InfiniteDuration(): never. Default: 5 seconds.
  absl::Duration recover_after = absl::Seconds(5);
};

// Thread-safe. Every method returns the server's status unchanged (codes as
// DESIGN.md §4), except:
// - DEADLINE_EXCEEDED when an attempt gets no answer within
//   options.timeout: "Read of w: no answer from SERVER within 30s (the
//   timeout of each attempt): the server is hung or overloaded";
// - UNAVAILABLE when the server cannot be reached (a call safe to retry
//   retried for options.retry_timeout): "Read of w: SERVER unavailable after
//   N attempts in 1m: " and gRPC's or the server's message.
// SERVER is "varscoped at HOST:PORT", or "shard I of N at HOST:PORT" on a
// cluster; the call is its method and the variable (or scope, or the
// updates of a batch) it names.
//
// On a cluster, calls on one name go to its shard; listings, scope reads and
// recursive deletes visit every shard and merge; a rename moves variables
// between shards (see Rename). A synchronous-replica contribution needs its
// variables and global step on one shard (FAILED_PRECONDITION otherwise).
//
// A client of several shards follows a re-shard (`varscope reshard`): a
// shard that refuses a call as coming from a client of its old cluster
// (IsStaleCluster) makes the client learn the new shard list from the
// shards, check it (see CheckCluster) and send the call again by it.
//
// A batch update (an optimizer step) spanning shards is split into one
// atomic batch per shard, all numbered with the batch's exactly-once id and
// sent in parallel; each is retried with that id while its shard restarts,
// so once BatchUpdate returns OK every part is applied exactly once. In the
// meantime a reader (BatchRead, Read) may see the parts of the shards that
// answered and not yet the others: each shard's part is atomic, the whole
// step is not. A step that fails (an error other than UNAVAILABLE, or
// UNAVAILABLE after retry_timeout) may be applied on some shards only;
// sending the same request again, with the id it was given, completes it
// without applying any part twice. The first shard of such a step (its
// keeper) also gets the other shards' parts, which it stores with its own
// (an intent) until this client's later requests say the step ended
// (complete_below: its lowest step under way); if the worker dies in the
// middle, a recovery pass completes the step from the intent (RecoverSteps
// in admin_client.h: run by every consistent cut, `varscope recover`, and
// a client of the cluster on its first call, see recover_after).
// BatchUpdate and EmbeddingApply do so.
class Client {
 public:
  // A client of the server at `address` (HOST:PORT), or of a cluster of
  // shards: `address` lists them, comma-separated, in the cluster's order
  // (the order the shards were started with, see varscoped's --cluster).
  // Each variable then lives on the shard ShardOf(name) picks (an
  // optimizer's slots go with their variable, a partitioned variable's parts
  // spread over the shards from the whole's). Does not wait for a connection:
  // an unreachable server shows as UNAVAILABLE on the first call. With several
  // shards, the first call checks the cluster first (see CheckCluster) and
  // fails with its error. With one address the client talks to that server
  // whatever its place in a cluster (to administer one shard, e.g. back it up).
  static std::unique_ptr<Client> Connect(const std::string& address,
                                         const ClientOptions& options = {});

  // A client of the shards behind `channels`, in cluster order, reached at
  // `addresses` (named in errors; default: "shard 0", "shard 1", ...).
  Client(std::vector<std::shared_ptr<grpc::ChannelInterface>> channels,
         const ClientOptions& options, std::vector<std::string> addresses = {});

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The servers' addresses as given (one per shard, in cluster order), and
  // the options this client was made with.
  const std::vector<std::string>& addresses() const { return addresses_; }
  const ClientOptions& options() const { return options_; }

  // The index of the shard that calls on `name` go to (0 for one server).
  int ShardFor(absl::string_view name) const {
    return ShardOf(name, shard_count_.load());
  }

  // With several shards: asks every shard for its cluster identity (see
  // GetServerInfo) and checks that the shard at position i of this client's
  // list is shard i of as many in one cluster. OK at once with one shard,
  // and after the first success. FAILED_PRECONDITION naming the shard, its
  // place and the cluster's order otherwise ("Shard list mismatch: ..."),
  // or the error of asking a shard.
  absl::Status CheckCluster();

  // TensorFlow's get_variable for one full name and reuse mode: CREATE
  // creates the variable, REUSE returns the existing one, AUTO_REUSE returns
  // it or creates it. Creation is atomic: of concurrent callers for one
  // name, exactly one gets created=true. On a cluster a partitioned
  // variable's parts spread over the shards (see ShardOf): the home shard
  // (ShardFor(name), which holds part 0) creates its parts or checks the
  // request against them first, with the errors below, and so decides the
  // variable; then the other shards get theirs in parallel, created if
  // missing as the home's parts describe (shape, partitions, dtype,
  // initializer and its seed: the values one server would create). A call
  // that fails after the home shard created its parts (another shard
  // unavailable) leaves the variable incomplete; the next REUSE or
  // AUTO_REUSE call completes it, a CREATE fails with ALREADY_EXISTS.
  // Errors: INVALID_ARGUMENT (bad
  // name, dtype, shape, initializer, partitioner or collections; a shape or
  // dtype other than the existing variable's), ALREADY_EXISTS (CREATE of an
  // existing name), NOT_FOUND (REUSE of a missing name; the message lists
  // similar names, of every shard on a cluster), FAILED_PRECONDITION (only
  // some parts of the partitioned variable `name` exist), RESOURCE_EXHAUSTED
  // (over the server's --max-variable-bytes), or the server's store error;
  // a failed call creates nothing. Retried through UNAVAILABLE in every
  // mode: a CREATE retried after its shard became unavailable that finds
  // the variable existing cannot tell whether its own earlier attempt
  // created it, and fails with ALREADY_EXISTS whose message adds "(This
  // CREATE was retried after SERVER became unavailable: its earlier attempt
  // may have created the variable.)".
  absl::StatusOr<v1::GetVariableResponse> GetVariable(
      const v1::GetVariableRequest& request);
  absl::StatusOr<ReadResult> Read(absl::string_view name);
  absl::StatusOr<UpdateResult> Assign(absl::string_view name, Tensor value,
                                      const UpdateOptions& options = {});
  absl::StatusOr<UpdateResult> AssignAdd(absl::string_view name, Tensor delta,
                                         const UpdateOptions& options = {});
  // As above, sending the bytes from where they are: gRPC may hold
  // `value.owner` (and so the bytes) a little after the call returned.
  absl::StatusOr<UpdateResult> Assign(absl::string_view name,
                                      SharedTensor value,
                                      const UpdateOptions& options = {});
  absl::StatusOr<UpdateResult> AssignAdd(absl::string_view name,
                                         SharedTensor delta,
                                         const UpdateOptions& options = {});
  // One page; pass response.next_page_token() back for the next.
  absl::StatusOr<v1::ListVariablesResponse> ListVariables(
      const v1::ListVariablesRequest& request);
  // Calls `fn` on each page of the listing `request` asks for (from its
  // page_token on), in name order; `fn` may move from the page. A page is
  // requested only after `fn` returned on the previous one, so a walk holds
  // one page at a time. OK after the last page, else the first error of
  // ListVariables or of `fn`. An empty or missing scope gives one empty page.
  absl::Status ForEachPage(
      v1::ListVariablesRequest request,
      absl::FunctionRef<absl::Status(v1::ListVariablesResponse&)> fn);
  absl::StatusOr<v1::VariableInfo> Stat(absl::string_view name);
  // Returns how many variables were deleted. A part of a partitioned
  // variable is deleted with its whole only (FAILED_PRECONDITION "Variable
  // w/part_1 is part 1 of the partitioned variable w (6 parts); delete the
  // whole: varscope rm -r w").
  absl::StatusOr<int64_t> Delete(absl::string_view name, bool recursive);
  // Renames a variable or a whole scope; returns how many variables were
  // renamed. On one server atomically. On a cluster the variables move to
  // the shards of their new names (values, versions and slots kept; admin
  // role, through each shard's AdminService): the new names are checked
  // free first (ALREADY_EXISTS), then each shard's variables are installed
  // under their new names and removed from it, shard after shard, all
  // under a pause of every shard (WithConsistentCut: workers' changes are
  // held back and retried meanwhile). A failure half-way (UNAVAILABLE)
  // leaves some variables renamed and the others not, every one whole
  // under one name. Errors as on one server: INVALID_ARGUMENT, NOT_FOUND,
  // ALREADY_EXISTS, FAILED_PRECONDITION for a part alone; and the pause's
  // (FAILED_PRECONDITION while another pause holds a shard).
  absl::StatusOr<int64_t> Rename(absl::string_view old_name,
                                 absl::string_view new_name);
  // The server's info; on a cluster the shards' totals, with the earliest
  // start time and shard 0's cluster identity.
  absl::StatusOr<v1::ServerInfo> GetServerInfo();

  // Applies the updates in order, all or nothing (on a cluster, all or
  // nothing per shard, see the class comment): assign, assign_add, scatter
  // and optimizer steps, whose slot variables are created on demand (and
  // stay if the batch fails). Errors change nothing else: INVALID_ARGUMENT
  // for a bad name, dtype, shape, index or optimizer, ABORTED on a failed
  // version check, NOT_FOUND for a missing variable, or the server's store
  // error. With options.exactly_once and no id in `request`, numbers it; a
  // request with an id is applied once however often it is sent (a repeat
  // answers the first result with duplicate=true), is retried through
  // UNAVAILABLE, and sent again after an error applies only the parts not
  // applied yet.
  absl::StatusOr<v1::BatchUpdateResponse> BatchUpdate(
      v1::BatchUpdateRequest request);
  // Contributes gradients to a synchronous step (see SyncApplyRequest). With
  // options.exactly_once and no id in `request`, numbers it, so a retried
  // contribution counts once. On a cluster, the variables on other shards
  // than the global step's are sent there first, in parallel (one part per
  // shard, under the same id), then the global step's shard gets its part
  // with which of them applied the step (see SyncShards); returns that
  // shard's answer (duplicate when every part was). An error leaves the
  // parts that were counted: sending the same request again (with the id
  // this call gave it) counts only the others.
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

  // Embedding variables (hash-keyed tables, see the README). On a cluster
  // every shard holds the variable and the keys spread over the shards by
  // a hash of the key (EmbeddingShardOf): a call sends one request to each
  // shard its keys are on, in parallel.
  //
  // get_embedding_variable on every shard, with GetVariable's modes,
  // errors and retries; returns the home shard's (ShardFor(name)) reply.
  absl::StatusOr<v1::GetVariableResponse> GetEmbeddingVariable(
      const v1::GetEmbeddingVariableRequest& request);
  // The rows of `keys` (a 1-D tensor of the key dtype): float32
  // [len(keys), embedding_dim] (see EmbeddingLookupRequest).
  absl::StatusOr<Tensor> EmbeddingLookup(
      absl::string_view name, const Tensor& keys,
      std::optional<int64_t> global_step = std::nullopt,
      bool read_only = false);
  // A sparse optimizer step (see EmbeddingApplyRequest): `gradients` is
  // float32 [len(keys), embedding_dim]. Numbered for exactly-once
  // application as BatchUpdate (each shard's part under the same id) and
  // retried through UNAVAILABLE; the counts are summed over the shards.
  absl::StatusOr<v1::EmbeddingApplyResponse> EmbeddingApply(
      absl::string_view name, const Tensor& keys, const Tensor& gradients,
      const v1::Optimizer& optimizer,
      std::optional<int64_t> global_step = std::nullopt);
  // Counts and sizes summed over the shards; the hottest keys of all.
  absl::StatusOr<v1::EmbeddingStats> EmbeddingStat(absl::string_view name,
                                                   int hottest = 0);
  // Every stored row, shard after shard (in key order on each), in pages of
  // `page_size` rows (0: the server's default).
  absl::StatusOr<v1::EmbeddingExportResponse> EmbeddingExport(
      absl::string_view name, int32_t page_size = 0);
  // Calls `fn` on each page of the rows `request` asks for (its name,
  // page_size and with_slots), shard after shard, from the first key on
  // each; `fn` may move from the page. OK after the last page, else the
  // first error of EmbeddingExport or of `fn`. A client that follows a
  // re-shard during the walk starts it again (`fn` sees rows again).
  absl::Status ForEachEmbeddingPage(
      v1::EmbeddingExportRequest request,
      absl::FunctionRef<absl::Status(v1::EmbeddingExportResponse&)> fn);
  // Stores rows as given (see EmbeddingImportRequest; `frequencies` and
  // `last_steps`, when given, are int64 [len(keys)]), numbered for
  // exactly-once application. Returns how many rows were stored.
  absl::StatusOr<int64_t> EmbeddingImport(absl::string_view name,
                                          const Tensor& keys,
                                          const Tensor& values,
                                          const Tensor* frequencies = nullptr,
                                          const Tensor* last_steps = nullptr);
  // EmbeddingImport of a whole request (with slots and keys to remove, see
  // EmbeddingImportRequest), each shard given its keys' rows; numbered for
  // exactly-once application unless `request.id` is set already. Returns
  // the counts summed over the shards.
  absl::StatusOr<v1::EmbeddingImportResponse> EmbeddingImport(
      v1::EmbeddingImportRequest request);

  // This client's id for exactly-once updates (random per client).
  const std::string& client_id() const { return client_id_; }

 private:
  // One call, as errors name it: its shard, its method and what it names
  // (a variable, "scope s", the updates of a batch).
  struct Rpc {
    int shard;
    absl::string_view method;
    std::string subject;
    // Its deadline bounds a wait (WaitForStep): DEADLINE_EXCEEDED is an
    // answer, not a sign of a hung server.
    bool waits = false;
  };
  // GetVariable of `request` on `shard` alone.
  absl::StatusOr<v1::GetVariableResponse> GetVariableOn(
      int shard, const v1::GetVariableRequest& request);
  // `response`, the home shard's answer for the partitioned variable
  // `request` names, with the parts of the other shards, which get them
  // created as the home's parts describe if missing (see GetVariable).
  absl::StatusOr<v1::GetVariableResponse> WithOtherParts(
      const v1::GetVariableRequest& request, v1::GetVariableResponse response);
  // On a cluster, FAILED_PRECONDITION if `name` is a part of a partitioned
  // variable, which one server refuses to delete (or rename) alone: its
  // shard does not see the other parts.
  absl::Status CheckNotAPart(absl::string_view name, bool rename);
  // Rename on a cluster: every variable named `old_name` or under it is
  // exported renamed from its shard, installed on the shard of its new name
  // and removed from its old one (AdminService, admin role), shard after
  // shard.
  absl::StatusOr<int64_t> RenameAcrossShards(absl::string_view old_name,
                                             absl::string_view new_name);
  // The call `method` of the variable `name`, on its shard.
  Rpc On(absl::string_view method, absl::string_view name) const;
  // After CheckCluster, runs `call(stub, context)` on rpc.shard's stub with a
  // fresh deadline (options.timeout, or `timeout`) per attempt, retrying
  // UNAVAILABLE when `idempotent` (see ClientOptions), and names the server
  // and the call in DEADLINE_EXCEEDED and UNAVAILABLE (see the class
  // comment).
  template <typename Call>
  absl::Status Run(const Rpc& rpc, bool idempotent, Call call);
  template <typename Call>
  absl::Status Run(const Rpc& rpc, bool idempotent, Call call,
                   absl::Duration timeout);
  // Runs `body` (a call's routing and RPCs) while the shard list stays as
  // it is, and returns what it returns, unless a shard refuses the call as
  // coming from a client of an older cluster (IsStaleCluster): then learns
  // the cluster's new shards (Refresh) and runs `body` again, at most
  // kMaxRefreshes times. `body` must leave what it sends as it found it
  // when that happens, exactly-once ids included, so that a step is sent
  // again under its id. A body run inside another runs at once.
  template <typename Body>
  std::invoke_result_t<Body> Routed(Body body);
  // Unless another call did since `generation`: asks the shards for the
  // cluster's new list (ServerInfo.cluster of the first shard that answers
  // with another cluster id; shards that do not answer are skipped, and
  // asked again for up to retry_timeout while none answers), connects to it
  // and checks it (CheckShards). FAILED_PRECONDITION if no shard names a
  // new list, else the error of asking or checking.
  absl::Status Refresh(int64_t generation);
  // While `shard` does not answer: whether another shard of the list
  // answers as a shard of another cluster (a re-shard, which may have taken
  // `shard` out and stopped it): then a stale-cluster error for `rpc`, which
  // Routed follows. Asks each other shard once, without retries.
  std::optional<absl::Status> ReshardedAway(const Rpc& rpc);
  // CheckCluster's checks, in a routed call.
  absl::Status CheckShards();
  // BatchUpdate's routed part: splits `request` over the shards (moving its
  // updates out, and back if a shard says the cluster changed); `spanned`:
  // whether it went to more than one.
  absl::StatusOr<v1::BatchUpdateResponse> BatchUpdateRouted(
      v1::BatchUpdateRequest& request, bool idempotent, bool& spanned);
  // The cluster id CheckCluster found, sent with every call; "" before it
  // succeeded and with one server.
  std::string ClusterId() const;
  // A channel to the server at `address` with this client's settings.
  static std::shared_ptr<grpc::ChannelInterface> NewChannel(
      const std::string& address, const ClientOptions& options);
  // Run without CheckCluster.
  template <typename Call>
  absl::Status Attempt(const Rpc& rpc, bool idempotent, Call call,
                       absl::Duration timeout);
  // "varscoped at HOST:PORT", or "shard I of N at HOST:PORT".
  std::string Server(int shard) const;
  // The cluster identity of every shard.
  absl::StatusOr<std::vector<v1::ServerInfo>> ServerInfos();

  // Assign (Request = v1::AssignRequest) or AssignAdd (v1::AssignAddRequest).
  template <typename Request>
  absl::StatusOr<UpdateResult> Update(absl::string_view name,
                                      const SharedTensor& tensor,
                                      const UpdateOptions& options);
  // Whether an update of `tensor` goes by WriteStream.
  bool StreamIt(const SharedTensor& tensor, const UpdateOptions& options) const;
  absl::StatusOr<ReadResult> ReadByStream(const v1::ReadRequest& request);
  absl::StatusOr<UpdateResult> WriteByStream(v1::StreamHeader header,
                                             const SharedTensor& tensor,
                                             bool idempotent);
  // On a cluster, INVALID_ARGUMENT unless `rows` (if given) has a row per
  // key.
  absl::Status CheckRowsPerKey(absl::string_view name, absl::string_view what,
                               const Tensor& keys, const Tensor* rows) const;
  // The positions of `keys` (int64 or int32) per shard.
  absl::StatusOr<std::vector<std::vector<int64_t>>> SplitKeys(
      const Tensor& keys) const;
  // An EmbeddingImport's rows (and keys to remove) per shard into `split`;
  // returns the shards that get a part. INVALID_ARGUMENT as SplitKeys and
  // CheckRowsPerKey.
  absl::StatusOr<std::vector<int>> SplitImport(
      const v1::EmbeddingImportRequest& request,
      std::vector<v1::EmbeddingImportRequest>& split) const;
  // The shards that get a request for keys split as `split`.
  std::vector<int> ShardsToCall(
      const std::vector<std::vector<int64_t>>& split) const;
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
  // Records a step of this client as under way until EndStep: numbers it
  // (Identify) if `id` is empty. False, and nothing recorded, for an empty
  // `id` without exactly_once.
  bool BeginStep(v1::UpdateId* id);
  // `failed`: the step spanned shards and its call failed, so a part may be
  // missing somewhere: its intent is kept for a recovery pass
  // (keep_intents) until the step is sent again.
  void EndStep(const v1::UpdateId& id, bool failed);
  // The complete_below of a request of step `id` (this client's lowest step
  // under way, or 0, nothing said, for another client's id), and in `keep`
  // its failed steps below that (keep_intents).
  int64_t CompleteBelow(const v1::UpdateId& id,
                        google::protobuf::RepeatedField<int64_t>& keep);
  // RecoverSteps over the shards (see ClientOptions::recover_after).
  void RecoverLeftSteps();

  // The shard list: read by every call while it holds topology_mu_ shared
  // (Routed), replaced by Refresh while it holds it exclusively. A shard's
  // channel carries the calls whose requests are built as raw bytes (see
  // Update), its stub the others.
  absl::Mutex topology_mu_;
  std::vector<std::shared_ptr<grpc::ChannelInterface>> channels_;
  std::vector<std::shared_ptr<v1::VariableService::StubInterface>> shards_;
  std::vector<std::string> addresses_;
  // Raised by every Refresh that changed the list.
  int64_t generation_ = 0;
  // shards_.size(), for ShardFor outside a call.
  std::atomic<int> shard_count_;
  const ClientOptions options_;
  // Whether CheckCluster succeeded (or has nothing to check).
  std::atomic<bool> cluster_checked_;
  mutable absl::Mutex id_mu_;
  std::string cluster_id_ ABSL_GUARDED_BY(id_mu_);
  const std::string client_id_;
  std::atomic<int64_t> sequence_{0};
  // The sequences of this client's steps under way (BeginStep to EndStep):
  // complete_below is the lowest; and of its failed steps, the newest
  // kMaxFailedSteps (see EndStep).
  static constexpr size_t kMaxFailedSteps = 64;
  absl::Mutex steps_mu_;
  std::set<int64_t> open_steps_ ABSL_GUARDED_BY(steps_mu_);
  std::set<int64_t> failed_steps_ ABSL_GUARDED_BY(steps_mu_);
};

// Whether `status` is a shard's refusal of a call from a client of another
// cluster id (FAILED_PRECONDITION starting with kStaleClusterPrefix).
bool IsStaleCluster(const absl::Status& status);

// The shard of an embedding key among `num_shards`.
int EmbeddingShardOf(int64_t key, int num_shards);

// The totals of a cluster's shards (REQUIRES: at least one): counts and
// bytes summed, the earliest start time, shard 0's version and identity.
v1::ServerInfo SumServerInfos(const std::vector<v1::ServerInfo>& shards);

}  // namespace varscope

#endif  // VARSCOPE_CLIENT_CLIENT_H_
