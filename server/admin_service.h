// The gRPC AdminService: consistent checkpoints and backups of the live
// store. The work runs on the service's own thread, one operation at a
// time, so a long backup holds no gRPC thread.
#ifndef VARSCOPE_SERVER_ADMIN_SERVICE_H_
#define VARSCOPE_SERVER_ADMIN_SERVICE_H_

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/storage.h"
#include "server/variable_table.h"
#include "varscope/v1/admin_service.grpc.pb.h"

namespace varscope::server {

// Every method takes and gives raw bytes, so that a request that does not
// parse gets a clear error (see ParseRaw in raw_calls.h).
using AdminServiceBase = v1::AdminService::WithRawCallbackMethod_Checkpoint<
    v1::AdminService::WithRawCallbackMethod_Backup<v1::AdminService::Service>>;

// Thread-safe. `table` and `storage` must outlive the service.
class AdminServiceImpl final : public AdminServiceBase {
 public:
  AdminServiceImpl(VariableTable* table, Storage* storage);
  // Finishes the operation in progress; operations still queued end with
  // CANCELLED.
  ~AdminServiceImpl() override;

  grpc::ServerUnaryReactor* Checkpoint(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Backup(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;

 private:
  // Parses `request` as a `Request` and runs `operation` on it on the worker
  // thread; the call finishes with its status, and its reply when OK.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Enqueue(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer& request,
      grpc::ByteBuffer* response,
      std::function<absl::Status(const Request&, Response*)> operation);
  void Work();
  // A checkpoint into `directory` of the store as of one moment, and what
  // the table held then.
  absl::StatusOr<StoreSummary> CheckpointAsOfNow(const std::string& directory);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  VariableTable* const table_;
  Storage* const storage_;

  struct Task {
    grpc::ServerUnaryReactor* reactor;
    std::function<absl::Status()> operation;
  };
  mutable absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_ADMIN_SERVICE_H_
