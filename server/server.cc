#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/transport.h"
#include "server/cluster_identity.h"
#include "server/variable_service.h"

namespace varscope::server {
namespace {

// A damaged data directory is never served: say what to do instead.
absl::Status WithDamageHint(const absl::Status& status) {
  if (!absl::IsDataLoss(status)) return status;
  return absl::DataLossError(absl::StrCat(
      status.message(),
      ". The data directory is damaged; varscoped does not serve it. Restore "
      "a backup or checkpoint into a new directory (varscope restore) and "
      "start on that"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentials(options.security);
  if (!credentials.ok()) return credentials.status();
  StorageOptions storage_options = options.storage;
  // Interval-mode writes are rare and large: fsync them too.
  storage_options.sync =
      options.table.durability.mode != Durability::Mode::kWal;
  absl::StatusOr<std::unique_ptr<Storage>> storage =
      Storage::Open(storage_options, options.data_dir);
  if (!storage.ok()) return WithDamageHint(storage.status());
  server->storage_ = *std::move(storage);
  absl::StatusOr<v1::ClusterIdentity> cluster =
      SettleIdentity(*server->storage_, options.data_dir, options.cluster);
  if (!cluster.ok()) return WithDamageHint(cluster.status());
  server->cluster_ = *std::move(cluster);
  absl::StatusOr<std::unique_ptr<VariableTable>> table =
      VariableTable::Load(options.table, server->storage_.get());
  if (!table.ok()) return WithDamageHint(table.status());
  server->table_ = *std::move(table);
  ServiceOptions service_options;
  service_options.max_message_bytes = options.max_message_bytes;
  service_options.max_variable_bytes = options.table.max_variable_bytes;
  service_options.cluster = server->cluster_;
  server->service_ = std::make_unique<VariableServiceImpl>(server->table_.get(),
                                                           service_options);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, *credentials,
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->admin_service_ = std::make_unique<AdminServiceImpl>(
      server->table_.get(), server->storage_.get());
  builder.RegisterService(server->admin_service_.get());
  // A unary message carries at most one variable plus a little framing.
  const int64_t max_message =
      std::min<int64_t>(INT_MAX, options.max_message_bytes + (1 << 20));
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message));
  builder.SetMaxSendMessageSize(static_cast<int>(max_message));
  for (const auto& [name, value] : LargeMessageTransportArgs()) {
    builder.AddChannelArgument(name, value);
  }
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("Cannot listen on ", options.listen_address));
  }
  return server;
}

void Server::Shutdown(absl::Duration grace) {
  if (grpc_server_ == nullptr) return;
  service_->Shutdown();
  grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  grpc_server_->Wait();
  grpc_server_.reset();
}

Server::~Server() { Shutdown(); }

}  // namespace varscope::server
