// The gRPC VariableService: decodes requests, checks the caller may make
// them (access.h: each method's role is in the README's security table),
// calls the VariableTable, encodes replies.
#ifndef VARSCOPE_SERVER_SERVICE_VARIABLE_SERVICE_H_
#define VARSCOPE_SERVER_SERVICE_VARIABLE_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string_view>

#include "absl/time/clock.h"
#include "server/base/executor.h"
#include "server/embedding/embedding_calls.h"
#include "server/service/access.h"
#include "server/service/cluster_identity.h"
#include "server/service/pause_gate.h"
#include "server/service/raw_calls.h"
#include "server/table/sync_replicas.h"
#include "server/table/variable_table.h"
#include "varscope/v1/variable_service.grpc.pb.h"

namespace varscope::server {

struct ServiceOptions {
  // The largest message, received or sent: a larger request fails with
  // RESOURCE_EXHAUSTED (from gRPC), and so does a call whose reply would be
  // larger (a Read of a variable whose reply does not fit: read it with
  // ReadStream, whose messages fit). Default: 256 MiB.
  int64_t max_message_bytes = int64_t{256} << 20;
  // Bytes per message of ReadStream, at most (less if max_message_bytes
  // needs it). Default: 2 MiB.
  int64_t stream_chunk_bytes = int64_t{2} << 20;
  // The largest content a WriteStream accepts. Default: 4 GiB.
  int64_t max_variable_bytes = int64_t{4} << 30;
  // The server's place in its cluster, as GetServerInfo reports it; every
  // other call is refused to a client of another cluster id (see
  // ClusterPlace::Admit). Must outlive the service. Default: nullptr, a
  // standalone server.
  const ClusterPlace* cluster = nullptr;
  // Who may call what; must outlive the service. Default: nullptr, every
  // caller may do everything.
  const AccessControl* access = nullptr;

  // The bytes that replies not yet received may hold (see ReplyBudget):
  // past it, reads of 16 KiB or more fail with RESOURCE_EXHAUSTED until
  // readers catch up. Default: 1 GiB.
  int64_t max_pending_reply_bytes = int64_t{1} << 30;

  // Holds changes back during a cluster pause (AdminService.Pause); must
  // outlive the service. Default: nullptr, no pauses.
  PauseGate* pause = nullptr;

  // The embedding-variable calls; must outlive the service. Default:
  // nullptr, they fail with UNIMPLEMENTED.
  EmbeddingCalls* embeddings = nullptr;

  // The threads that run the calls that change the table while they may
  // wait for something slow (see VariableServiceImpl), and how many such
  // calls may wait for one: past that, a call fails with
  // RESOURCE_EXHAUSTED. Default: 16 and 4096.
  int store_threads = 16;
  int64_t max_queued_changes = 4096;
};

// The callback service with every method taking and giving raw bytes (see
// raw_calls.h).
using VariableServiceBase = WithMethods<
    v1::VariableService::Service,
    v1::VariableService::WithRawCallbackMethod_GetVariable,
    v1::VariableService::WithRawCallbackMethod_Read,
    v1::VariableService::WithRawCallbackMethod_Assign,
    v1::VariableService::WithRawCallbackMethod_AssignAdd,
    v1::VariableService::WithRawCallbackMethod_ListVariables,
    v1::VariableService::WithRawCallbackMethod_Stat,
    v1::VariableService::WithRawCallbackMethod_Delete,
    v1::VariableService::WithRawCallbackMethod_Rename,
    v1::VariableService::WithRawCallbackMethod_GetServerInfo,
    v1::VariableService::WithRawCallbackMethod_BatchUpdate,
    v1::VariableService::WithRawCallbackMethod_BatchRead,
    v1::VariableService::WithRawCallbackMethod_Gather,
    v1::VariableService::WithRawCallbackMethod_ReadStream,
    v1::VariableService::WithRawCallbackMethod_WriteStream,
    v1::VariableService::WithRawCallbackMethod_SyncApply,
    v1::VariableService::WithRawCallbackMethod_WaitForStep,
    v1::VariableService::WithRawCallbackMethod_GetEmbeddingVariable,
    v1::VariableService::WithRawCallbackMethod_EmbeddingLookup,
    v1::VariableService::WithRawCallbackMethod_EmbeddingApply,
    v1::VariableService::WithRawCallbackMethod_EmbeddingStat,
    v1::VariableService::WithRawCallbackMethod_EmbeddingExport,
    v1::VariableService::WithRawCallbackMethod_EmbeddingImport>::type;

// Thread-safe. `table` must outlive the service.
//
// Every request is checked as it parses (ParseRaw): INVALID_ARGUMENT if it
// does not parse or holds an enum value outside its enum. Replies of reads
// are held in a ReplyBudget of options.max_pending_reply_bytes: a read of
// 16 KiB or more while replies not yet received hold more fails with
// RESOURCE_EXHAUSTED; replies of changes are counted but never refused.
//
// No gRPC reaction blocks: reads answer from memory at once, and the calls
// that change the table (GetVariable, Assign, AssignAdd, BatchUpdate,
// Delete, Rename, SyncApply, the end of a WriteStream) run on the service's
// executor (options.store_threads) whenever they may wait for something
// slow: always in the sync mode (an fsync), and in the others during a
// pause (a checkpoint) or the rewrite after a failed store write; else they
// run in the reaction, where they wait at most for another change of the
// same variable. When options.max_queued_changes wait for the executor
// already, such a call fails with RESOURCE_EXHAUSTED "The server is busy:
// ...; retry later".
class VariableServiceImpl final : public VariableServiceBase {
 public:
  VariableServiceImpl(VariableTable* table, const ServiceOptions& options)
      : table_(table),
        options_(options),
        sync_(table),
        budget_(options.max_pending_reply_bytes),
        executor_(options.store_threads, options.max_queued_changes) {}

  // Ends the calls waiting for a step (with UNAVAILABLE): call before the
  // gRPC server shuts down.
  void Shutdown() { sync_.Shutdown(); }

  SyncReplicas& sync() { return sync_; }

  grpc::ServerUnaryReactor* GetVariable(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Assign(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* AssignAdd(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListVariables(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Stat(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Rename(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BatchUpdate(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BatchRead(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Gather(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* ReadStream(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* WriteStream(
      grpc::CallbackServerContext* context,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* SyncApply(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* WaitForStep(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  // Embedding variables (see EmbeddingCalls).
  grpc::ServerUnaryReactor* GetEmbeddingVariable(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* EmbeddingLookup(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* EmbeddingApply(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* EmbeddingStat(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* EmbeddingExport(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* EmbeddingImport(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;

  // Test-only: the next `n` successful updates and GetVariable calls are
  // applied, then answered with UNAVAILABLE as if the reply were lost.
  void DropUpdateRepliesForTest(int n) { drop_replies_ = n; }

  // Test-only: the bytes replies not yet received hold (see ReplyBudget).
  int64_t PendingReplyBytesForTest() const { return budget_.held_bytes(); }

  // Test-only: how many WaitForStep calls wait.
  int StepWaitersForTest() { return sync_.WaitersForTest(); }

  // `status`, or UNAVAILABLE when a reply is to be dropped for a test.
  absl::Status MaybeDropReply(absl::Status status);

 private:
  class ReadStreamReactor;
  class WriteStreamReactor;

  // Answers a unary call: parses `request` as a `Request` and replies with
  // the bytes `handle` returns for it, or its error, or RESOURCE_EXHAUSTED
  // if they are over the message limit. `handle` runs at once, or with
  // kChanges as RunChange says (maybe on the executor): then it must
  // capture nothing by reference.
  enum class Runs { kAtOnce, kChanges };
  template <typename Request, typename Handle>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer& request,
                                  grpc::ByteBuffer* response, Handle handle,
                                  Runs runs = Runs::kAtOnce);
  // Runs `run`, then calls `finish` with its status: at once if the table
  // says no change waits for anything slow now (ChangesMayWait), else on
  // the executor (see Offload). First the pause gate (options_.pause) lets
  // the change of `caller` (numbered `id`, a step over the shards `span`)
  // through, or finishes it with UNAVAILABLE; a null `caller` is a call
  // that only reads (a REUSE get), which passes.
  void RunChange(const grpc::ServerContextBase* caller, const v1::UpdateId* id,
                 absl::Span<const int32_t> span,
                 std::function<absl::Status()> run,
                 std::function<void(const absl::Status&)> finish);

  // `result`'s message as a reply (see MessageRaw), or its error.
  template <typename Message>
  absl::StatusOr<grpc::ByteBuffer> Encode(absl::StatusOr<Message> result,
                                          bool refusable);

  // RESOURCE_EXHAUSTED if a message of `bytes` is over the message limit.
  absl::Status CheckMessageSize(int64_t bytes) const;

  // Answers an Assign or AssignAdd `request`: applies its tensor (moved out
  // with `tensor`) as the `op` of a batch of one update.
  template <typename Request>
  grpc::ServerUnaryReactor* ApplyOne(grpc::CallbackServerContext* context,
                                     absl::string_view method,
                                     const grpc::ByteBuffer& request,
                                     grpc::ByteBuffer* response,
                                     v1::Tensor* (Request::*tensor)(),
                                     v1::Tensor* (v1::Update::*op)());

  // Answers an embedding call: parses `request` as a `Request`, checks the
  // caller may make it as `role` on its name, and replies with what
  // `call` returns for it (refusable for reads). `Arg` is the request type,
  // const unless `call` takes what it needs out of the request.
  template <typename Arg, typename Result>
  grpc::ServerUnaryReactor* EmbeddingCall(
      grpc::CallbackServerContext* context, absl::string_view method,
      const grpc::ByteBuffer& request, grpc::ByteBuffer* response, Role role,
      absl::StatusOr<Result> (EmbeddingCalls::*call)(Arg&));

  const AccessControl& access() const {
    return options_.access == nullptr ? open_ : *options_.access;
  }
  // OK if the caller of `context` routes for this server's cluster (see
  // ClusterPlace::Admit) and may call `method` (AccessControl::Authorize).
  absl::Status Admit(const grpc::ServerContextBase& context,
                     absl::string_view method, Role needed,
                     absl::Span<const absl::string_view> names) const;
  // The error a WriteStream with `header` would end with that is known
  // before its content arrives (see WriteStreamReactor).
  absl::Status CheckStreamHeader(const v1::StreamHeader& header) const;

  VariableTable* const table_;
  const ServiceOptions options_;
  SyncReplicas sync_;
  const AccessControl open_;  // without options_.access
  ReplyBudget budget_;
  std::atomic<int> drop_replies_{0};
  const int64_t start_time_micros_ = absl::ToUnixMicros(absl::Now());
  std::atomic<int64_t> reads_{0};
  std::atomic<int64_t> updates_{0};
  std::atomic<int64_t> gets_{0};
  // Last: destroyed first, while what its tasks use lives.
  Executor executor_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_VARIABLE_SERVICE_H_
