// The gRPC AdminService: consistent checkpoints and backups of the live
// store. The work runs on the service's own thread, one operation at a
// time, so a long backup holds no gRPC thread.
#ifndef VARSCOPE_SERVER_SERVICE_ADMIN_SERVICE_H_
#define VARSCOPE_SERVER_SERVICE_ADMIN_SERVICE_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/service/access.h"
#include "server/storage/storage.h"
#include "server/table/variable_table.h"
#include "varscope/v1/admin_service.grpc.pb.h"

namespace varscope::server {

using AdminServiceBase = v1::AdminService::WithRawCallbackMethod_Checkpoint<
    v1::AdminService::WithRawCallbackMethod_Backup<v1::AdminService::Service>>;

// Thread-safe. `table`, `storage` and `access` must outlive the service.
//
// Every method needs the admin role (`access` decides). Directories are
// confined to `backup_root`: a relative one is taken under it, and one with a
// '..' component (INVALID_ARGUMENT), resolving outside it through symlinks
// (PERMISSION_DENIED) or with a file in place of a directory
// (FAILED_PRECONDITION) is refused; with no root ("") every call is
// FAILED_PRECONDITION naming --backup-root.
//
// Every method takes and gives raw bytes, so that a request that does not
// parse gets a clear error (see ParseRaw in raw_calls.h).
class AdminServiceImpl final : public AdminServiceBase {
 public:
  AdminServiceImpl(VariableTable* table, Storage* storage,
                   const AccessControl* access, std::string backup_root);
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
  // Parses `request` as a `Request` and checks the caller may call
  // `method`, then runs `operation` on the worker thread with the request's
  // directory resolved under the backup root; the call finishes with its
  // status (or the refusal's), and its reply when OK.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Enqueue(
      grpc::CallbackServerContext* context, absl::string_view method,
      const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
      std::function<absl::Status(const Request&, const std::string&, Response*)>
          operation);
  void Work();
  // A checkpoint into `directory` of the store as of one moment, and what
  // the table held then.
  absl::StatusOr<StoreSummary> CheckpointAsOfNow(const std::string& directory);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  VariableTable* const table_;
  Storage* const storage_;
  const AccessControl* const access_;
  const std::string backup_root_;

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

#endif  // VARSCOPE_SERVER_SERVICE_ADMIN_SERVICE_H_
