#include "server/admin_service.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "server/raw_calls.h"

namespace varscope::server {
namespace {

absl::Status CheckDirectory(const std::string& directory) {
  if (directory.empty() || !std::filesystem::path(directory).is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "The directory must be an absolute path on the server's machine, not "
        "'",
        directory, "'"));
  }
  return absl::OkStatus();
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

int64_t MicrosSince(absl::Time start) {
  return absl::ToInt64Microseconds(absl::Now() - start);
}

}  // namespace

AdminServiceImpl::AdminServiceImpl(VariableTable* table, Storage* storage)
    : table_(table), storage_(storage), worker_([this] { Work(); }) {}

AdminServiceImpl::~AdminServiceImpl() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  worker_.join();
}

bool AdminServiceImpl::HasWork() const { return stopping_ || !tasks_.empty(); }

void AdminServiceImpl::Work() {
  for (;;) {
    Task task;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(this, &AdminServiceImpl::HasWork));
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
      if (stopping_) {
        task.reactor->Finish(
            grpc::Status(grpc::StatusCode::CANCELLED, "The server stopped"));
        continue;
      }
    }
    task.reactor->Finish(ToGrpcStatus(task.operation()));
  }
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* AdminServiceImpl::Enqueue(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer& request,
    grpc::ByteBuffer* response,
    std::function<absl::Status(const Request&, Response*)> operation) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Request parsed;
  const absl::Status status = ParseRaw(request, &parsed);
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  absl::MutexLock l(&mu_);
  tasks_.push_back({reactor, [parsed = std::move(parsed), response,
                              operation = std::move(operation)] {
                      Response reply;
                      VS_RETURN_IF_ERROR(operation(parsed, &reply));
                      *response = SerializeRaw(reply);
                      return absl::OkStatus();
                    }});
  return reactor;
}

absl::StatusOr<StoreSummary> AdminServiceImpl::CheckpointAsOfNow(
    const std::string& directory) {
  // Shorten the pause of CopyStore: most of the memtables go first.
  VS_RETURN_IF_ERROR(table_->Flush());
  VS_RETURN_IF_ERROR(storage_->FlushMemtables());
  return table_->CopyStore([&]() -> absl::StatusOr<uint64_t> {
    return storage_->Checkpoint(directory);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::Checkpoint(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Enqueue<v1::CheckpointRequest, v1::CheckpointResponse>(
      context, *request, response,
      [this](const v1::CheckpointRequest& request,
             v1::CheckpointResponse* response) -> absl::Status {
        const absl::Time start = absl::Now();
        VS_RETURN_IF_ERROR(CheckDirectory(request.directory()));
        VS_ASSIGN_OR_RETURN(const StoreSummary summary,
                            CheckpointAsOfNow(request.directory()));
        FillContents(summary, request.return_versions(),
                     response->mutable_contents());
        response->set_duration_micros(MicrosSince(start));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::Backup(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Enqueue<v1::BackupRequest, v1::BackupResponse>(
      context, *request, response,
      [this](const v1::BackupRequest& request,
             v1::BackupResponse* response) -> absl::Status {
        const absl::Time start = absl::Now();
        VS_RETURN_IF_ERROR(CheckDirectory(request.directory()));
        const std::string staging = storage_->StagingDirectory();
        std::error_code error;
        std::filesystem::remove_all(staging, error);
        VS_ASSIGN_OR_RETURN(const StoreSummary summary,
                            CheckpointAsOfNow(staging));
        VS_ASSIGN_OR_RETURN(
            const BackupSummary backup,
            storage_->BackupCheckpoint(staging, request.directory(), summary));
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

}  // namespace varscope::server
