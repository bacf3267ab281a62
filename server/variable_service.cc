#include "server/variable_service.h"

#include <optional>

#include "common/grpc_status.h"
#include "common/status.h"

namespace varscope::server {
namespace {

// Finishes the call with `status`.
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A batch of one update from an Assign or AssignAdd request.
template <typename Request>
v1::BatchUpdateRequest OneUpdate(const Request& request, v1::Update* update) {
  v1::BatchUpdateRequest batch;
  update->set_name(request.name());
  if (request.has_expected_version()) {
    update->set_expected_version(request.expected_version());
  }
  *batch.add_updates() = std::move(*update);
  if (request.has_id()) *batch.mutable_id() = request.id();
  batch.set_return_values(request.return_value());
  return batch;
}

absl::Status FillUpdate(absl::StatusOr<v1::BatchUpdateResponse> result,
                        v1::UpdateResponse* response) {
  VS_RETURN_IF_ERROR(result.status());
  response->set_version(result->versions(0));
  if (result->values_size() > 0) {
    response->mutable_value()->Swap(result->mutable_values(0));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status VariableServiceImpl::MaybeDropReply(absl::Status status) {
  if (status.ok() && drop_replies_.load() > 0 &&
      drop_replies_.fetch_sub(1) > 0) {
    return absl::UnavailableError("Reply dropped for a test");
  }
  return status;
}

grpc::ServerUnaryReactor* VariableServiceImpl::GetVariable(
    grpc::CallbackServerContext* context, const v1::GetVariableRequest* request,
    v1::GetVariableResponse* response) {
  gets_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::GetVariableResponse> result =
      table_->GetVariable(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Read(
    grpc::CallbackServerContext* context, const v1::ReadRequest* request,
    v1::ReadResponse* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<ReadResult> result = table_->Read(request->name());
  if (result.ok()) {
    response->set_version(result->version);
    TensorToProto(std::move(result->value), response->mutable_value());
  }
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Assign(
    grpc::CallbackServerContext* context, const v1::AssignRequest* request,
    v1::UpdateResponse* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  v1::Update update;
  *update.mutable_assign() = request->value();
  return Reply(
      context,
      FillUpdate(table_->BatchUpdate(OneUpdate(*request, &update)), response));
}

grpc::ServerUnaryReactor* VariableServiceImpl::AssignAdd(
    grpc::CallbackServerContext* context, const v1::AssignAddRequest* request,
    v1::UpdateResponse* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  v1::Update update;
  *update.mutable_assign_add() = request->delta();
  return Reply(
      context,
      FillUpdate(table_->BatchUpdate(OneUpdate(*request, &update)), response));
}

grpc::ServerUnaryReactor* VariableServiceImpl::BatchUpdate(
    grpc::CallbackServerContext* context, const v1::BatchUpdateRequest* request,
    v1::BatchUpdateResponse* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::BatchUpdateResponse> result =
      table_->BatchUpdate(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, MaybeDropReply(result.status()));
}

grpc::ServerUnaryReactor* VariableServiceImpl::BatchRead(
    grpc::CallbackServerContext* context, const v1::BatchReadRequest* request,
    v1::BatchReadResponse* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::BatchReadResponse> result = table_->BatchRead(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Gather(
    grpc::CallbackServerContext* context, const v1::GatherRequest* request,
    v1::GatherResponse* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::GatherResponse> result = table_->Gather(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::ListVariables(
    grpc::CallbackServerContext* context,
    const v1::ListVariablesRequest* request,
    v1::ListVariablesResponse* response) {
  absl::StatusOr<v1::ListVariablesResponse> result = table_->List(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Stat(
    grpc::CallbackServerContext* context, const v1::StatRequest* request,
    v1::VariableInfo* response) {
  absl::StatusOr<v1::VariableInfo> result = table_->Stat(request->name());
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Delete(
    grpc::CallbackServerContext* context, const v1::DeleteRequest* request,
    v1::DeleteResponse* response) {
  absl::StatusOr<int64_t> result =
      table_->Delete(request->name(), request->recursive());
  if (result.ok()) response->set_deleted(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Rename(
    grpc::CallbackServerContext* context, const v1::RenameRequest* request,
    v1::RenameResponse* response) {
  absl::StatusOr<int64_t> result =
      table_->Rename(request->old_name(), request->new_name());
  if (result.ok()) response->set_renamed(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::GetServerInfo(
    grpc::CallbackServerContext* context, const v1::ServerInfoRequest* request,
    v1::ServerInfo* response) {
  const VariableTable::Totals totals = table_->GetTotals();
  response->set_version(VARSCOPE_VERSION);
  response->set_start_time_micros(start_time_micros_);
  response->set_variable_count(totals.variables);
  response->set_total_bytes(totals.bytes);
  response->set_reads(reads_.load(std::memory_order_relaxed));
  response->set_updates(updates_.load(std::memory_order_relaxed));
  response->set_gets(gets_.load(std::memory_order_relaxed));
  return Reply(context, absl::OkStatus());
}

}  // namespace varscope::server
