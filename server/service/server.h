// A running varscoped: the store, the variable table and the gRPC server
// (VariableService, AdminService, grpc.health.v1 health, server reflection).
//
// grpc.health.v1: the server as a whole (service "") is SERVING while its
// store takes writes and NOT_SERVING while store writes fail (a full disk,
// I/O errors, failing interval flushes; reads still work) and once it shuts
// down. Service "liveness" is SERVING for as long as the server answers
// calls, whatever the store's state: for probes that restart a process.
#ifndef VARSCOPE_SERVER_SERVICE_SERVER_H_
#define VARSCOPE_SERVER_SERVICE_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/service/admin_service.h"
#include "server/service/cluster_identity.h"
#include "server/service/monitoring.h"
#include "server/service/security.h"
#include "server/service/variable_service.h"
#include "server/storage/storage.h"
#include "server/table/variable_table.h"

namespace grpc {
class Server;
}

namespace varscope::server {

struct ServerOptions {
  // HOST:PORT to listen on; port 0 picks a free port (see Server::port()).
  // Default: 127.0.0.1:7070.
  std::string listen_address = "127.0.0.1:7070";
  // The RocksDB directory, created if missing. Default: ./varscope-data.
  std::string data_dir = "./varscope-data";
  StorageOptions storage;
  TableOptions table;
  // The largest message received or sent (see ServiceOptions); bigger
  // variables move by streams. REQUIRES: at most INT_MAX (gRPC's limit).
  // Default: 256 MiB.
  int64_t max_message_bytes = int64_t{256} << 20;
  // The bytes replies not yet received by their clients may hold before
  // reads are refused (see ServiceOptions). Default: 1 GiB.
  int64_t max_pending_reply_bytes = int64_t{1} << 30;
  // TLS, client certificates and tokens. Default: plaintext, no tokens.
  ServerSecurity security;
  // The directory under which AdminService checkpoints and backups are
  // written (see AdminServiceImpl). Default: "", none: they are refused.
  std::string backup_root;
  // The place in a cluster this server is started as (see
  // ConfiguredIdentity). Default: nullopt, the one the store recorded, else
  // a standalone server.
  std::optional<v1::ClusterIdentity> cluster;
  // HOST:PORT to serve Prometheus metrics on (GET /metrics); port 0 picks a
  // free port (see Server::metrics_port()). Default: empty, no metrics
  // endpoint (the counters are kept all the same).
  std::string metrics_listen;
  // Calls slower than this are logged (event slow_call). Default: never.
  absl::Duration slow_call = absl::InfiniteDuration();
  // The bytes embedding variables' rows may take in memory; the others stay
  // on disk only (see embedding::EmbeddingOptions). Default: 0, no budget.
  int64_t memory_budget = 0;
};

// The grpc.health.v1 service name that stays SERVING while the server runs.
inline constexpr char kLivenessService[] = "liveness";

// Thread-safe.
class Server {
 public:
  // Opens the store, settles its cluster identity (SettleIdentity), loads
  // every variable and starts serving. Errors: the store's (UNAVAILABLE if
  // another server holds the directory, DATA_LOSS if it is damaged),
  // FAILED_PRECONDITION if options.cluster differs from the identity the
  // store recorded, UNAVAILABLE if the address cannot be bound, saying why
  // (`Cannot listen on HOST:PORT: the address is in use (is another
  // varscoped serving it?)`): a port is never shared with another process.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Shuts down (as Shutdown with the default grace) and closes the store.
  ~Server();

  // The bound port.
  int port() const { return port_; }
  // The metrics endpoint's bound port; 0 without one.
  int metrics_port() const {
    return metrics_endpoint_ == nullptr ? 0 : metrics_endpoint_->port();
  }
  // The exposition text GET /metrics returns.
  std::string MetricsText() const { return registry_->Exposition(); }
  // The store's place in its cluster.
  v1::ClusterIdentity cluster() const { return cluster_->Get(); }

  VariableServiceImpl& ServiceForTest() { return *service_; }

  // Rereads the token file (AccessControl::Reload) and the TLS files
  // (ServingCertificates::Reload): new calls and new connections use them.
  // A file that fails leaves its old version in force; the error names
  // every file that failed.
  absl::Status ReloadSecurity();

  // Stops accepting calls, lets in-flight calls finish for up to `grace`,
  // then cancels the rest. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

 private:
  class StoreHealth;

  Server();
  // While store writes fail: retries them (Flush) every second, so that the
  // server is SERVING again once the disk works without waiting for a
  // client's write.
  void RetryFailedWrites();

  int port_ = 0;
  std::unique_ptr<StoreHealth> health_;
  std::unique_ptr<ClusterPlace> cluster_;
  std::shared_ptr<AccessControl> access_;
  // Outlives grpc_server_, whose port watches it.
  std::unique_ptr<ServingCertificates> certificates_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<VariableTable> table_;
  // The store writes the calls' pending exactly-once records when it is
  // destroyed: the calls go after it.
  std::unique_ptr<EmbeddingCalls> embedding_calls_;
  std::unique_ptr<embedding::EmbeddingStore> embeddings_;
  std::unique_ptr<PauseGate> pause_;
  std::unique_ptr<VariableServiceImpl> service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<grpc::Server> grpc_server_;
  absl::Notification stop_retrying_;
  std::thread retry_thread_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_SERVER_H_
