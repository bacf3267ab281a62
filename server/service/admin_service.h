// The gRPC AdminService: consistent checkpoints and backups of the live
// store. The work runs on the service's own executor, one operation at a
// time, so a long backup holds no gRPC thread.
#ifndef VARSCOPE_SERVER_SERVICE_ADMIN_SERVICE_H_
#define VARSCOPE_SERVER_SERVICE_ADMIN_SERVICE_H_

#include <functional>
#include <string>

#include "server/base/executor.h"
#include "server/service/access.h"
#include "server/service/cluster_identity.h"
#include "server/service/pause_gate.h"
#include "server/service/raw_calls.h"
#include "server/storage/storage.h"
#include "server/table/variable_table.h"
#include "varscope/v1/admin_service.grpc.pb.h"

namespace varscope::server {

using AdminServiceBase =
    WithMethods<v1::AdminService::Service,
                v1::AdminService::WithRawCallbackMethod_Checkpoint,
                v1::AdminService::WithRawCallbackMethod_Backup,
                v1::AdminService::WithRawCallbackMethod_ExportVariables,
                v1::AdminService::WithRawCallbackMethod_InstallVariables,
                v1::AdminService::WithRawCallbackMethod_RemoveVariables,
                v1::AdminService::WithRawCallbackMethod_SetClusterIdentity,
                v1::AdminService::WithRawCallbackMethod_Pause,
                v1::AdminService::WithRawCallbackMethod_Resume,
                v1::AdminService::WithRawCallbackMethod_ListIntents,
                v1::AdminService::WithRawCallbackMethod_DeleteIntent>::type;

// Thread-safe. `table`, `storage`, `access`, `cluster` and `pause` must
// outlive the service.
//
// Pause and Resume act on `pause` (see PauseGate); Pause runs on its own
// executor, since it waits for the changes under way. A Checkpoint or
// Backup with a pause_id checks, while it takes its copy, that the pause
// still holds (ABORTED otherwise), then ends it.
//
// Every method needs the admin role (`access` decides), but ListIntents and
// DeleteIntent, which need the write role over every name (a worker
// recovers the steps of dead workers: Recover in admin_client.h); they are
// the table's intents (VariableTable::intents, ForgetIntent). The re-sharding
// methods (ExportVariables, InstallVariables, RemoveVariables,
// SetClusterIdentity) are the table's (VariableTable::Export, Install,
// Remove) and ClusterPlace::Change. Directories are
// confined to `backup_root`: a relative one is taken under it, and one with a
// '..' component (INVALID_ARGUMENT), resolving outside it through symlinks
// (PERMISSION_DENIED) or with a file in place of a directory
// (FAILED_PRECONDITION) is refused, and its missing parents are created; with
// no root ("") every call is FAILED_PRECONDITION naming --backup-root.
//
// At most kMaxQueued operations wait for the one in progress; past that, a
// call fails with RESOURCE_EXHAUSTED.
//
// Every method takes and gives raw bytes, so that a request that does not
// parse gets a clear error (see ParseRaw in raw_calls.h).
class AdminServiceImpl final : public AdminServiceBase {
 public:
  AdminServiceImpl(VariableTable* table, Storage* storage,
                   const AccessControl* access, ClusterPlace* cluster,
                   PauseGate* pause, std::string backup_root);
  // Finishes the operation in progress; operations still queued end with
  // CANCELLED.
  ~AdminServiceImpl() override = default;

  grpc::ServerUnaryReactor* Checkpoint(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Backup(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ExportVariables(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* InstallVariables(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RemoveVariables(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* SetClusterIdentity(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Pause(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Resume(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListIntents(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DeleteIntent(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;

 private:
  static constexpr int64_t kMaxQueued = 64;

  // Parses `request` as a `Request` and checks the caller may call
  // `method` (on `target`, for the log) with role `needed`, then runs
  // `operation` on the
  // executor; the call finishes with its status (or the refusal's), and its
  // reply when OK.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Enqueue(
      grpc::CallbackServerContext* context, absl::string_view method,
      const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
      std::function<std::string(const Request&)> target,
      std::function<absl::Status(const Request&, Response*)> operation,
      Role needed = Role::kAdmin);
  // Enqueue of `operation` with the request's directory resolved under the
  // backup root.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* EnqueueInDirectory(
      grpc::CallbackServerContext* context, absl::string_view method,
      const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
      std::function<absl::Status(const Request&, const std::string&, Response*)>
          operation);
  // A checkpoint into `directory` of the store as of one moment, and what
  // the table held then; with a `pause_id`, of that pause's cut, which it
  // then ends.
  absl::StatusOr<StoreSummary> CheckpointAsOfNow(const std::string& directory,
                                                 const std::string& pause_id);

  VariableTable* const table_;
  Storage* const storage_;
  const AccessControl* const access_;
  ClusterPlace* const cluster_;
  PauseGate* const pause_;
  const std::string backup_root_;

  // Last: destroyed first, finishing what runs while the rest lives.
  Executor pause_executor_{1, kMaxQueued};
  Executor executor_{1, kMaxQueued};
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_ADMIN_SERVICE_H_
