// The gRPC VariableService: decodes requests, calls the VariableTable,
// encodes replies. No logic of its own.
#ifndef VARSCOPE_SERVER_VARIABLE_SERVICE_H_
#define VARSCOPE_SERVER_VARIABLE_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "server/sync_replicas.h"
#include "server/variable_table.h"
#include "varscope/v1/variable_service.grpc.pb.h"

namespace varscope::server {

struct ServiceOptions {
  // The largest variable a unary Read returns; larger ones go by
  // ReadStream. Default: 256 MiB.
  int64_t max_message_bytes = int64_t{256} << 20;
  // Bytes per message of ReadStream. Default: 2 MiB.
  int64_t stream_chunk_bytes = int64_t{2} << 20;
  // The largest content a WriteStream accepts. Default: 4 GiB.
  int64_t max_variable_bytes = int64_t{4} << 30;
  // The server's place in its cluster, as GetServerInfo reports it.
  // Default: empty.
  v1::ClusterIdentity cluster;
};

// The callback service with the data path's methods taking and giving raw
// bytes (see raw_calls.h): reads send the published buffers without a copy,
// updates move the request's tensors into the table.
using VariableServiceBase = v1::VariableService::WithRawCallbackMethod_Read<
    v1::VariableService::WithRawCallbackMethod_BatchRead<
        v1::VariableService::WithRawCallbackMethod_Assign<
            v1::VariableService::WithRawCallbackMethod_AssignAdd<
                v1::VariableService::WithRawCallbackMethod_BatchUpdate<
                    v1::VariableService::CallbackService>>>>>;

// Thread-safe. `table` must outlive the service.
class VariableServiceImpl final : public VariableServiceBase {
 public:
  VariableServiceImpl(VariableTable* table, const ServiceOptions& options)
      : table_(table), options_(options), sync_(table) {}

  // Ends the calls waiting for a step (with UNAVAILABLE): call before the
  // gRPC server shuts down.
  void Shutdown() { sync_.Shutdown(); }

  grpc::ServerUnaryReactor* GetVariable(
      grpc::CallbackServerContext* context,
      const v1::GetVariableRequest* request,
      v1::GetVariableResponse* response) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Assign(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* AssignAdd(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListVariables(
      grpc::CallbackServerContext* context,
      const v1::ListVariablesRequest* request,
      v1::ListVariablesResponse* response) override;
  grpc::ServerUnaryReactor* Stat(grpc::CallbackServerContext* context,
                                 const v1::StatRequest* request,
                                 v1::VariableInfo* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* Rename(grpc::CallbackServerContext* context,
                                   const v1::RenameRequest* request,
                                   v1::RenameResponse* response) override;
  grpc::ServerUnaryReactor* BatchUpdate(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BatchRead(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Gather(grpc::CallbackServerContext* context,
                                   const v1::GatherRequest* request,
                                   v1::GatherResponse* response) override;
  grpc::ServerWriteReactor<v1::TensorChunk>* ReadStream(
      grpc::CallbackServerContext* context,
      const v1::ReadRequest* request) override;
  grpc::ServerReadReactor<v1::TensorChunk>* WriteStream(
      grpc::CallbackServerContext* context,
      v1::UpdateResponse* response) override;
  grpc::ServerUnaryReactor* SyncApply(grpc::CallbackServerContext* context,
                                      const v1::SyncApplyRequest* request,
                                      v1::SyncApplyResponse* response) override;
  grpc::ServerUnaryReactor* WaitForStep(
      grpc::CallbackServerContext* context,
      const v1::WaitForStepRequest* request,
      v1::WaitForStepResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::ServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

  // Test-only: the next `n` successful updates and GetVariable calls are
  // applied, then answered with UNAVAILABLE as if the reply were lost.
  void DropUpdateRepliesForTest(int n) { drop_replies_ = n; }

  // `status`, or UNAVAILABLE when a reply is to be dropped for a test.
  absl::Status MaybeDropReply(absl::Status status);

 private:
  class WriteStreamReactor;

  // Answers an Assign or AssignAdd `request`: applies its tensor (moved out
  // with `tensor`) as the `op` of a batch of one update.
  template <typename Request>
  grpc::ServerUnaryReactor* ApplyOne(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer& request,
                                     grpc::ByteBuffer* response,
                                     v1::Tensor* (Request::*tensor)(),
                                     v1::Tensor* (v1::Update::*op)());

  VariableTable* const table_;
  const ServiceOptions options_;
  SyncReplicas sync_;
  std::atomic<int> drop_replies_{0};
  const int64_t start_time_micros_ = absl::ToUnixMicros(absl::Now());
  std::atomic<int64_t> reads_{0};
  std::atomic<int64_t> updates_{0};
  std::atomic<int64_t> gets_{0};
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_VARIABLE_SERVICE_H_
