#include "server/service/admin_service.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "server/service/access.h"
#include "server/service/offload.h"
#include "server/service/raw_calls.h"

namespace varscope::server {
namespace {

// `requested`, resolved under `root`: a relative path is taken relative to
// it; `..` components are refused, and so is a path whose existing part
// resolves (symlinks followed) outside the root or is a file.
absl::StatusOr<std::string> ResolveUnderRoot(const std::string& root,
                                             const std::string& requested) {
  namespace fs = std::filesystem;
  if (root.empty()) {
    return absl::FailedPreconditionError(
        "This server writes no checkpoints or backups: start varscoped with "
        "--backup-root=DIR to allow them under DIR");
  }
  if (requested.empty()) {
    return absl::InvalidArgumentError(
        "Name the directory to write, under the server's backup root");
  }
  const fs::path path(requested);
  for (const fs::path& part : path) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          "The directory '", requested,
          "' has a '..' component; name one under the backup root ", root));
    }
  }
  std::error_code error;
  const fs::path real_root = fs::canonical(root, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat(
        "The backup root ", root, " cannot be resolved: ", error.message()));
  }
  const fs::path resolved =
      fs::weakly_canonical(path.is_absolute() ? path : real_root / path, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("The directory '", requested,
                     "' cannot be resolved: ", error.message()));
  }
  const fs::path relative = resolved.lexically_relative(real_root);
  if (relative.empty() || relative == "." || *relative.begin() == "..") {
    return absl::PermissionDeniedError(absl::StrCat(
        "The directory '", requested, "' resolves to ", resolved.string(),
        ", not under the backup root ", real_root.string()));
  }
  for (fs::path at = resolved; at != real_root; at = at.parent_path()) {
    if (fs::exists(at, error) && !fs::is_directory(at, error)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "The directory '", requested, "' cannot be written: ", at.string(),
          " is a file, not a directory"));
    }
  }
  return resolved.string();
}

void FillContents(const StoreSummary& summary, bool with_versions,
                  v1::StoreContents* contents) {
  contents->set_sequence(summary.sequence);
  contents->set_variables(summary.variables);
  contents->set_bytes(summary.bytes);
  if (with_versions) {
    contents->mutable_versions()->insert(summary.versions.begin(),
                                         summary.versions.end());
  }
}

// Parses a Pause or Resume request as `request` and checks that the caller
// may make it (admin).
template <typename Request>
absl::Status ParsePauseCall(const AccessControl& access,
                            const grpc::CallbackServerContext& context,
                            absl::string_view method,
                            const grpc::ByteBuffer& raw, Request* request) {
  VS_RETURN_IF_ERROR(ParseRaw(raw, request));
  return access.Authorize(context, method, Role::kAdmin, {""},
                          request->pause_id());
}

int64_t MicrosSince(absl::Time start) {
  return absl::ToInt64Microseconds(absl::Now() - start);
}

}  // namespace

AdminServiceImpl::AdminServiceImpl(VariableTable* table, Storage* storage,
                                   const AccessControl* access,
                                   ClusterPlace* cluster, PauseGate* pause,
                                   std::string backup_root)
    : table_(table),
      storage_(storage),
      access_(access),
      cluster_(cluster),
      pause_(pause),
      backup_root_(std::move(backup_root)) {}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* AdminServiceImpl::Enqueue(
    grpc::CallbackServerContext* context, absl::string_view method,
    const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
    std::function<std::string(const Request&)> target,
    std::function<absl::Status(const Request&, Response*)> operation,
    Role needed) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Request parsed;
  absl::Status status = ParseRaw(request, &parsed);
  if (status.ok()) {
    status = access_->Authorize(*context, method, needed, {""}, target(parsed));
  }
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  auto run = [parsed = std::move(parsed), response,
              operation = std::move(operation)]() -> absl::Status {
    Response reply;
    VS_RETURN_IF_ERROR(operation(parsed, &reply));
    *response = SerializeRaw(reply);
    return absl::OkStatus();
  };
  Offload(
      executor_, std::move(run),
      [reactor](const absl::Status& status) {
        reactor->Finish(ToGrpcStatus(status));
      },
      absl::StrCat(kMaxQueued, " checkpoints and backups"));
  return reactor;
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* AdminServiceImpl::EnqueueInDirectory(
    grpc::CallbackServerContext* context, absl::string_view method,
    const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
    std::function<absl::Status(const Request&, const std::string&, Response*)>
        operation) {
  return Enqueue<Request, Response>(
      context, method, request, response,
      [](const Request& parsed) { return parsed.directory(); },
      [this, operation = std::move(operation)](
          const Request& parsed, Response* reply) -> absl::Status {
        VS_ASSIGN_OR_RETURN(const std::string directory,
                            ResolveUnderRoot(backup_root_, parsed.directory()));
        // A cluster's copies go to DIR/shard-I: DIR may not exist yet.
        std::error_code error;
        std::filesystem::create_directories(
            std::filesystem::path(directory).parent_path(), error);
        if (error) {
          return absl::FailedPreconditionError(
              absl::StrCat("Cannot create the parent of ", directory, ": ",
                           error.message()));
        }
        return operation(parsed, directory, reply);
      });
}

absl::StatusOr<StoreSummary> AdminServiceImpl::CheckpointAsOfNow(
    const std::string& directory, const std::string& pause_id) {
  // Shorten the pause of CopyStore: most of the memtables go first.
  VS_RETURN_IF_ERROR(table_->Flush());
  VS_RETURN_IF_ERROR(storage_->FlushMemtables());
  absl::StatusOr<StoreSummary> summary =
      table_->CopyStore([&]() -> absl::StatusOr<uint64_t> {
        if (!pause_id.empty()) VS_RETURN_IF_ERROR(pause_->CheckHeld(pause_id));
        return storage_->Checkpoint(directory);
      });
  // The copy point is taken: writers may go on (a pause that ended already
  // is no error here).
  if (!pause_id.empty()) pause_->Resume(pause_id).IgnoreError();
  return summary;
}

grpc::ServerUnaryReactor* AdminServiceImpl::Pause(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::PauseRequest parsed;
  const absl::Status status =
      ParsePauseCall(*access_, *context, "Pause", *request, &parsed);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  Offload(
      pause_executor_,
      [this, parsed = std::move(parsed), response]() -> absl::Status {
        VS_ASSIGN_OR_RETURN(const v1::PauseResponse reply,
                            pause_->Pause(parsed));
        *response = SerializeRaw(reply);
        return absl::OkStatus();
      },
      [reactor](const absl::Status& status) {
        reactor->Finish(ToGrpcStatus(status));
      },
      absl::StrCat(kMaxQueued, " pauses"));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::Resume(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::ResumeRequest parsed;
  absl::Status status =
      ParsePauseCall(*access_, *context, "Resume", *request, &parsed);
  if (status.ok()) {
    absl::StatusOr<v1::ResumeResponse> reply =
        pause_->Resume(parsed.pause_id());
    status = reply.status();
    if (reply.ok()) *response = SerializeRaw(*reply);
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::Checkpoint(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return EnqueueInDirectory<v1::CheckpointRequest, v1::CheckpointResponse>(
      context, "Checkpoint", *request, response,
      [this](const v1::CheckpointRequest& request, const std::string& directory,
             v1::CheckpointResponse* response) -> absl::Status {
        const absl::Time start = absl::Now();
        VS_ASSIGN_OR_RETURN(const StoreSummary summary,
                            CheckpointAsOfNow(directory, request.pause_id()));
        FillContents(summary, request.return_versions(),
                     response->mutable_contents());
        response->set_duration_micros(MicrosSince(start));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::Backup(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return EnqueueInDirectory<v1::BackupRequest, v1::BackupResponse>(
      context, "Backup", *request, response,
      [this](const v1::BackupRequest& request, const std::string& directory,
             v1::BackupResponse* response) -> absl::Status {
        const absl::Time start = absl::Now();
        const std::string staging = storage_->StagingDirectory();
        std::error_code error;
        std::filesystem::remove_all(staging, error);
        VS_ASSIGN_OR_RETURN(StoreSummary summary,
                            CheckpointAsOfNow(staging, request.pause_id()));
        summary.cut = request.pause_id();
        VS_ASSIGN_OR_RETURN(
            const BackupSummary backup,
            storage_->BackupCheckpoint(staging, directory, summary));
        if (request.keep() > 0) {
          VS_ASSIGN_OR_RETURN(const std::vector<uint32_t> deleted,
                              Storage::PruneBackups(directory, request.keep()));
          response->mutable_deleted_backup_ids()->Add(deleted.begin(),
                                                      deleted.end());
        }
        response->set_backup_id(backup.backup_id);
        response->set_size_bytes(backup.size_bytes);
        response->set_files(backup.files);
        response->set_added_bytes(backup.added_bytes);
        FillContents(summary, request.return_versions(),
                     response->mutable_contents());
        response->set_duration_micros(MicrosSince(start));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ExportVariables(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Enqueue<v1::ExportVariablesRequest, v1::ExportVariablesResponse>(
      context, "ExportVariables", *request, response,
      [](const v1::ExportVariablesRequest& request) {
        return request.names().empty() ? std::string() : request.names(0);
      },
      [this](const v1::ExportVariablesRequest& request,
             v1::ExportVariablesResponse* response) -> absl::Status {
        VS_ASSIGN_OR_RETURN(*response, table_->Export(request));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::InstallVariables(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Enqueue<v1::InstallVariablesRequest, v1::InstallVariablesResponse>(
      context, "InstallVariables", *request, response,
      [](const v1::InstallVariablesRequest& request) {
        return request.variables().empty()
                   ? std::string()
                   : request.variables(0).stored().info().name();
      },
      [this](const v1::InstallVariablesRequest& request,
             v1::InstallVariablesResponse* response) -> absl::Status {
        VS_ASSIGN_OR_RETURN(*response, table_->Install(request));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RemoveVariables(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Enqueue<v1::RemoveVariablesRequest, v1::RemoveVariablesResponse>(
      context, "RemoveVariables", *request, response,
      [](const v1::RemoveVariablesRequest& request) {
        return request.names().empty() ? std::string() : request.names(0);
      },
      [this](const v1::RemoveVariablesRequest& request,
             v1::RemoveVariablesResponse* response) -> absl::Status {
        VS_ASSIGN_OR_RETURN(
            const int64_t removed,
            table_->Remove({request.names().begin(), request.names().end()}));
        response->set_removed(removed);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetClusterIdentity(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Enqueue<v1::SetClusterIdentityRequest, v1::SetClusterIdentityResponse>(
      context, "SetClusterIdentity", *request, response,
      [](const v1::SetClusterIdentityRequest& request) {
        return request.identity().cluster_id();
      },
      [this](const v1::SetClusterIdentityRequest& request,
             v1::SetClusterIdentityResponse* response) -> absl::Status {
        VS_ASSIGN_OR_RETURN(*response->mutable_previous(),
                            cluster_->Change(*storage_, request.identity()));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListIntents(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::ListIntentsRequest parsed;
  absl::Status status = ParseRaw(*request, &parsed);
  if (status.ok()) {
    status =
        access_->Authorize(*context, "ListIntents", Role::kWrite, {""}, "");
  }
  if (status.ok()) {
    absl::StatusOr<v1::ListIntentsResponse> reply = table_->intents().List(
        parsed.min_age_micros(), absl::ToUnixMicros(absl::Now()));
    status = reply.status();
    if (reply.ok()) *response = SerializeRaw(*reply);
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeleteIntent(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Enqueue<v1::DeleteIntentRequest, v1::DeleteIntentResponse>(
      context, "DeleteIntent", *request, response,
      [](const v1::DeleteIntentRequest& request) {
        return absl::StrCat(request.id().client_id(), "/",
                            request.id().sequence());
      },
      [this](const v1::DeleteIntentRequest& request,
             v1::DeleteIntentResponse* response) -> absl::Status {
        VS_ASSIGN_OR_RETURN(const bool deleted,
                            table_->ForgetIntent(request.id()));
        response->set_deleted(deleted);
        return absl::OkStatus();
      },
      Role::kWrite);
}

}  // namespace varscope::server
