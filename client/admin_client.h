// varscope::AdminClient: the operator calls of one varscoped server
// (AdminService): consistent checkpoints and backups of its store, and the
// steps of a re-shard.
#ifndef VARSCOPE_CLIENT_ADMIN_CLIENT_H_
#define VARSCOPE_CLIENT_ADMIN_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/transport.h"
#include "varscope/v1/admin_service.grpc.pb.h"

namespace varscope {

// Thread-safe. Each call is attempted once (neither is idempotent) with
// `timeout` as its deadline and returns the server's status unchanged,
// DEADLINE_EXCEEDED, or UNAVAILABLE when the server cannot be reached.
// Directories are absolute paths on the server's machine.
class AdminClient {
 public:
  static std::unique_ptr<AdminClient> Connect(
      const std::string& address, absl::Duration timeout,
      const ClientSecurity& security = {});

  // A client over `stub`: Connect's, or another implementation of the
  // generated interface (a fake server in a test of the caller).
  AdminClient(std::shared_ptr<v1::AdminService::StubInterface> stub,
              absl::Duration timeout);

  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  absl::StatusOr<v1::CheckpointResponse> Checkpoint(
      const v1::CheckpointRequest& request);
  absl::StatusOr<v1::BackupResponse> Backup(const v1::BackupRequest& request);
  // Re-sharding (see admin_service.proto).
  absl::StatusOr<v1::ExportVariablesResponse> ExportVariables(
      const v1::ExportVariablesRequest& request);
  absl::StatusOr<v1::InstallVariablesResponse> InstallVariables(
      const v1::InstallVariablesRequest& request);
  absl::StatusOr<v1::RemoveVariablesResponse> RemoveVariables(
      const v1::RemoveVariablesRequest& request);
  absl::StatusOr<v1::SetClusterIdentityResponse> SetClusterIdentity(
      const v1::SetClusterIdentityRequest& request);

 private:
  // Calls `method` of the stub once with a fresh deadline.
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request);

  const std::shared_ptr<v1::AdminService::StubInterface> stub_;
  const absl::Duration timeout_;
};

}  // namespace varscope

#endif  // VARSCOPE_CLIENT_ADMIN_CLIENT_H_
