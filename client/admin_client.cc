#include "client/admin_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace varscope {

std::unique_ptr<AdminClient> AdminClient::Connect(
    const std::string& address, absl::Duration timeout,
    const ClientSecurity& security) {
  // Re-sharding moves whole variables in one message each.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  for (const auto& [name, value] : LargeMessageTransportArgs()) {
    args.SetInt(name, value);
  }
  return std::make_unique<AdminClient>(
      v1::AdminService::NewStub(grpc::CreateCustomChannel(
          address, ChannelCredentials(security), args)),
      timeout);
}

AdminClient::AdminClient(std::shared_ptr<v1::AdminService::StubInterface> stub,
                         absl::Duration timeout)
    : stub_(std::move(stub)), timeout_(timeout) {}

template <typename Response, typename Request, typename Method>
absl::StatusOr<Response> AdminClient::Call(Method method,
                                           const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  Response response;
  const absl::Status status =
      FromGrpcStatus(((*stub_).*method)(&context, request, &response));
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<v1::CheckpointResponse> AdminClient::Checkpoint(
    const v1::CheckpointRequest& request) {
  return Call<v1::CheckpointResponse>(
      &v1::AdminService::StubInterface::Checkpoint, request);
}

absl::StatusOr<v1::BackupResponse> AdminClient::Backup(
    const v1::BackupRequest& request) {
  return Call<v1::BackupResponse>(&v1::AdminService::StubInterface::Backup,
                                  request);
}

absl::StatusOr<v1::ExportVariablesResponse> AdminClient::ExportVariables(
    const v1::ExportVariablesRequest& request) {
  return Call<v1::ExportVariablesResponse>(
      &v1::AdminService::StubInterface::ExportVariables, request);
}

absl::StatusOr<v1::InstallVariablesResponse> AdminClient::InstallVariables(
    const v1::InstallVariablesRequest& request) {
  return Call<v1::InstallVariablesResponse>(
      &v1::AdminService::StubInterface::InstallVariables, request);
}

absl::StatusOr<v1::RemoveVariablesResponse> AdminClient::RemoveVariables(
    const v1::RemoveVariablesRequest& request) {
  return Call<v1::RemoveVariablesResponse>(
      &v1::AdminService::StubInterface::RemoveVariables, request);
}

absl::StatusOr<v1::SetClusterIdentityResponse> AdminClient::SetClusterIdentity(
    const v1::SetClusterIdentityRequest& request) {
  return Call<v1::SetClusterIdentityResponse>(
      &v1::AdminService::StubInterface::SetClusterIdentity, request);
}

}  // namespace varscope
