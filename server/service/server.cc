#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "common/transport.h"
#include "server/base/log.h"
#include "server/service/cluster_identity.h"
#include "server/service/variable_service.h"

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

// Why gRPC could not listen on `address` (HOST:PORT), found by binding it as
// gRPC does (SO_REUSEADDR, no SO_REUSEPORT): gRPC logs the reason but does
// not return it.
std::string WhyCannotListen(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "it is not HOST:PORT";
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = address.substr(colon + 1);
  addrinfo hints = {};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int error = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                port.c_str(), &hints, &found);
  if (error != 0) return gai_strerror(error);
  std::string why = "gRPC could not bind it";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const int failure = bind(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    close(fd);
    if (failure == EADDRINUSE) {
      why = "the address is in use (is another varscoped serving it?)";
      break;
    }
    if (failure != 0) {
      why = strerror(failure);
      break;
    }
  }
  freeaddrinfo(found);
  return why;
}

}  // namespace

// Whether the store takes writes, as the table reports it, mirrored into the
// health service's status of "" once there is one.
class Server::StoreHealth {
 public:
  void Report(bool writable) {
    absl::MutexLock l(&mu_);
    writable_ = writable;
    log::Log(writable ? log::Level::kInfo : log::Level::kError, "health",
             {{"status", writable ? "SERVING" : "NOT_SERVING"}});
    if (health_ != nullptr) health_->SetServingStatus("", writable);
  }
  bool writable() const {
    absl::MutexLock l(&mu_);
    return writable_;
  }
  void Attach(grpc::HealthCheckServiceInterface* health) {
    absl::MutexLock l(&mu_);
    health_ = health;
    health_->SetServingStatus(kLivenessService, true);
    health_->SetServingStatus("", writable_);
  }

 private:
  mutable absl::Mutex mu_;
  bool writable_ ABSL_GUARDED_BY(mu_) = true;
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
};

Server::Server() : health_(std::make_unique<StoreHealth>()) {}

// Long: the start-up steps in their one valid order (store, identity, table,
// services, listener), each undone by the destructor of what it built.
absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server());
  server->access_ = std::make_shared<AccessControl>();
  if (!options.security.auth_token_file.empty()) {
    absl::StatusOr<std::unique_ptr<AccessControl>> access =
        AccessControl::Load(options.security.auth_token_file);
    if (!access.ok()) return access.status();
    server->access_ = *std::move(access);
  }
  absl::StatusOr<PortSecurity> port_security =
      ServerCredentials(options.security, server->access_);
  if (!port_security.ok()) return port_security.status();
  server->certificates_ = std::move(port_security->certificates);
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
  server->cluster_ = std::make_unique<ClusterPlace>(*std::move(cluster));
  const absl::Time load_start = absl::Now();
  TableOptions table_options = options.table;
  table_options.on_store_writable = [health =
                                         server->health_.get()](bool writable) {
    health->Report(writable);
  };
  absl::StatusOr<std::unique_ptr<VariableTable>> table =
      VariableTable::Load(table_options, server->storage_.get());
  if (!table.ok()) return WithDamageHint(table.status());
  server->table_ = *std::move(table);
  const VariableTable::Totals totals = server->table_->GetTotals();
  log::Log(log::Level::kInfo, "recovery",
           {{"variables", totals.variables},
            {"bytes", totals.bytes},
            {"seconds", absl::ToDoubleSeconds(absl::Now() - load_start)},
            {"wal_replayed_bytes",
             server->storage_->GetStats().wal_replayed_bytes}});
  server->embeddings_ =
      embedding::EmbeddingStore::Open({.memory_budget = options.memory_budget,
                                       .durability = options.table.durability},
                                      server->storage_.get());
  // The rows of embedding variables deleted before leave the store now.
  std::vector<uint64_t> live_tables;
  v1::ListVariablesRequest list;
  list.set_recursive(true);
  do {
    absl::StatusOr<v1::ListVariablesResponse> page = server->table_->List(list);
    if (!page.ok()) return page.status();
    for (const v1::ListVariablesResponse::Entry& entry : page->entries()) {
      if (entry.variable().has_embedding()) {
        live_tables.push_back(entry.variable().embedding().table_id());
      }
    }
    list.set_page_token(page->next_page_token());
  } while (!list.page_token().empty());
  if (absl::Status dropped = server->embeddings_->DropOthers(live_tables);
      !dropped.ok()) {
    return dropped;
  }
  server->embedding_calls_ = std::make_unique<EmbeddingCalls>(
      server->table_.get(), server->embeddings_.get());
  ServiceOptions service_options;
  service_options.embeddings = server->embedding_calls_.get();
  service_options.max_message_bytes = options.max_message_bytes;
  service_options.max_variable_bytes = options.table.max_variable_bytes;
  service_options.max_pending_reply_bytes = options.max_pending_reply_bytes;
  service_options.cluster = server->cluster_.get();
  service_options.access = server->access_.get();
  const v1::ClusterIdentity place = server->cluster_->Get();
  server->pause_ = std::make_unique<PauseGate>(
      place.shard_count() > 1 ? absl::StrCat("Shard ", place.shard_index(),
                                             " of ", place.shard_count())
                              : "This server",
      [table = server->table_.get()](const v1::UpdateId& id) {
        return table->applied().Applied(id);
      });
  service_options.pause = server->pause_.get();
  server->service_ = std::make_unique<VariableServiceImpl>(server->table_.get(),
                                                           service_options);

  server->rpc_metrics_ = std::make_unique<RpcMetrics>(options.slow_call);
  server->registry_ = ServerRegistry({.table = server->table_.get(),
                                      .embeddings = server->embeddings_.get(),
                                      .storage = server->storage_.get(),
                                      .sync = &server->service_->sync(),
                                      .rpc = server->rpc_metrics_.get(),
                                      .durability = options.table.durability,
                                      .start_time = absl::Now()});

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, port_security->credentials,
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->admin_service_ = std::make_unique<AdminServiceImpl>(
      server->table_.get(), server->storage_.get(), server->access_.get(),
      server->cluster_.get(), server->pause_.get(), options.backup_root);
  builder.RegisterService(server->admin_service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  for (const auto& [name, value] : LargeMessageTransportArgs()) {
    builder.AddChannelArgument(name, value);
  }
  // gRPC would share a served port with another process (SO_REUSEPORT),
  // which then gets a share of the clients.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(server->rpc_metrics_->InterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("Cannot listen on ", options.listen_address, ": ",
                     WhyCannotListen(options.listen_address)));
  }
  server->health_->Attach(server->grpc_server_->GetHealthCheckService());
  server->retry_thread_ =
      std::thread([s = server.get()] { s->RetryFailedWrites(); });
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
        MetricsEndpoint::Start(options.metrics_listen, server->registry_.get());
    if (!endpoint.ok()) return endpoint.status();
    server->metrics_endpoint_ = *std::move(endpoint);
  }
  return server;
}

absl::Status Server::ReloadSecurity() {
  absl::Status tokens = access_->Reload();
  const absl::Status tls =
      certificates_ == nullptr ? absl::OkStatus() : certificates_->Reload();
  if (tokens.ok()) return tls;
  if (!tls.ok()) {
    tokens = absl::Status(tokens.code(),
                          absl::StrCat(tokens.message(), "; ", tls.message()));
  }
  return tokens;
}

void Server::RetryFailedWrites() {
  while (!stop_retrying_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    // Its outcome reaches the health service through the table's report.
    if (!health_->writable()) table_->Flush().IgnoreError();
  }
}

void Server::Shutdown(absl::Duration grace) {
  if (retry_thread_.joinable()) {
    stop_retrying_.Notify();
    retry_thread_.join();
  }
  if (grpc_server_ == nullptr) return;
  service_->Shutdown();
  grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  grpc_server_->Wait();
  grpc_server_.reset();
  if (metrics_endpoint_ != nullptr) metrics_endpoint_->Stop();
}

Server::~Server() { Shutdown(); }

}  // namespace varscope::server
