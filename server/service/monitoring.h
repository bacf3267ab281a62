// varscoped's metrics: a gRPC interceptor that counts and times every call
// of every service, the figures of the table, the sync replicas, the store
// and the process, and the HTTP endpoint (/metrics) that exposes them to
// Prometheus. The metric names are listed in README.md ("Operating").
#ifndef VARSCOPE_SERVER_SERVICE_MONITORING_H_
#define VARSCOPE_SERVER_SERVICE_MONITORING_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/base/metrics.h"
#include "server/embedding/embedding_table.h"
#include "server/storage/storage.h"
#include "server/table/durability.h"
#include "server/table/sync_replicas.h"
#include "server/table/variable_table.h"

namespace httplib {
class Server;
}

namespace varscope::server {

// Calls by method: counts by status code, latencies, bytes.
class RpcMetrics {
 public:
  // Knows every method of VariableService, AdminService and
  // grpc.health.v1.Health; calls of other methods (server reflection) are
  // counted under method "other". Calls slower than `slow_call` are logged
  // (event slow_call: method, name, peer, duration).
  explicit RpcMetrics(absl::Duration slow_call);
  ~RpcMetrics();

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators. The
  // factory refers to this object, which must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  InterceptorFactory();

  // Adds varscope_rpc_requests_total, varscope_rpc_duration_seconds,
  // varscope_rpc_received_bytes_total and varscope_rpc_sent_bytes_total.
  void Register(metrics::Registry& registry) const;

  struct Method;

 private:
  class Interceptor;
  class Factory;

  Method& Find(const char* full_name);

  const absl::Duration slow_call_;
  // By full name ("/varscope.v1.VariableService/Read"); fixed after the
  // constructor.
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_;
  std::unique_ptr<Method> other_;
  metrics::Counter received_bytes_;
  metrics::Counter sent_bytes_;
};

// What the server's metrics read.
struct MonitoredParts {
  const VariableTable* table = nullptr;
  const embedding::EmbeddingStore* embeddings = nullptr;
  Storage* storage = nullptr;
  SyncReplicas* sync = nullptr;
  const RpcMetrics* rpc = nullptr;
  Durability durability;
  absl::Time start_time;
};

// Every metric of the server (see README.md), reading `parts`, which must
// outlive the registry.
std::unique_ptr<metrics::Registry> ServerRegistry(const MonitoredParts& parts);

// Serves GET /metrics (the registry's exposition) over HTTP on a thread of
// its own. Thread-safe.
class MetricsEndpoint {
 public:
  // Listens on `address` (HOST:PORT, port 0 picks one; [::1]:PORT for IPv6).
  // UNAVAILABLE if it cannot bind, INVALID_ARGUMENT if `address` has no
  // port. `registry` must outlive the endpoint.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address, const metrics::Registry* registry);
  // Stops serving (as Stop).
  ~MetricsEndpoint();

  int port() const { return port_; }
  // Stops serving; waits for the requests in progress. Idempotent.
  void Stop();

 private:
  MetricsEndpoint() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_MONITORING_H_
