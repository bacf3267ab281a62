#include "server/service/monitoring.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"
#include "httplib.h"
#include "server/base/log.h"
#include "server/service/variable_service.h"
#include "varscope/v1/admin_service.grpc.pb.h"
#include "varscope/v1/variable_service.grpc.pb.h"

namespace varscope::server {

using metrics::Labels;
using metrics::SeriesWriter;
using metrics::Type;

constexpr int kCodes = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED

struct RpcMetrics::Method {
  explicit Method(std::string l) : label(std::move(l)) {}

  // "VariableService/Read".
  const std::string label;
  // The type of the request, which reaches interceptors as bytes (both
  // services take raw requests, see ParseRaw); null when unknown (then
  // requests are not looked into).
  const google::protobuf::Descriptor* request = nullptr;
  std::array<metrics::Counter, kCodes> calls;
  metrics::Histogram seconds{metrics::LatencyBuckets()};
};

namespace {

// The variable a request names: its string field `name` (or `old_name`, or
// the first of `names`), else the first such name in a message it holds;
// "" if none.
std::string NameOf(const google::protobuf::Message& message, int depth = 0) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Descriptor* type = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  for (const char* key : {"name", "old_name", "names"}) {
    const FieldDescriptor* f = type->FindFieldByName(key);
    if (f == nullptr || f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      continue;
    }
    if (!f->is_repeated()) return reflection->GetString(message, f);
    if (reflection->FieldSize(message, f) > 0) {
      return reflection->GetRepeatedString(message, f, 0);
    }
  }
  if (depth == 2) return "";
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    std::string name;
    if (f->is_repeated()) {
      if (reflection->FieldSize(message, f) > 0) {
        name = NameOf(reflection->GetRepeatedMessage(message, f, 0), depth + 1);
      }
    } else if (reflection->HasField(message, f)) {
      name = NameOf(reflection->GetMessage(message, f), depth + 1);
    }
    if (!name.empty()) return name;
  }
  return "";
}

// NameOf a request that arrived as bytes, parsed as `type`.
std::string NameOfRaw(const grpc::ByteBuffer& buffer,
                      const google::protobuf::Descriptor* type) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return "";
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  std::unique_ptr<google::protobuf::Message> message(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(type)
          ->New());
  if (!message->ParseFromString(bytes)) return "";
  return NameOf(*message);
}

}  // namespace

// One call: counted and timed from its start to its status.
class RpcMetrics::Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(RpcMetrics* metrics, grpc::experimental::ServerRpcInfo* info)
      : metrics_(metrics),
        info_(info),
        method_(metrics->Find(info->method())),
        start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    using grpc::experimental::InterceptionHookPoints;
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE)) {
      Received(m->GetRecvMessage());
    }
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      if (const grpc::ByteBuffer* sent = m->GetSerializedSendMessage()) {
        metrics_->sent_bytes_.Add(static_cast<double>(sent->Length()));
      }
    }
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finished(m->GetSendStatus());
    }
    m->Proceed();
  }

 private:
  void Received(void* message) {
    if (message == nullptr || method_.request == nullptr) return;
    const auto* buffer = static_cast<const grpc::ByteBuffer*>(message);
    metrics_->received_bytes_.Add(static_cast<double>(buffer->Length()));
    if (request_ != nullptr) return;
    request_ = buffer;
    // A stream reuses its message: keep the first one's name now.
    if (info_->type() ==
            grpc::experimental::ServerRpcInfo::Type::CLIENT_STREAMING ||
        info_->type() ==
            grpc::experimental::ServerRpcInfo::Type::BIDI_STREAMING) {
      stream_name_ = NameOfRaw(*buffer, method_.request);
    }
  }

  void Finished(const grpc::Status& status) {
    const absl::Duration duration = absl::Now() - start_;
    const int code = status.error_code();
    method_.calls[code >= 0 && code < kCodes ? code : 2].Add();  // UNKNOWN
    method_.seconds.Observe(absl::ToDoubleSeconds(duration));
    if (duration < metrics_->slow_call_ ||
        !log::Enabled(log::Level::kWarning)) {
      return;
    }
    log::Log(log::Level::kWarning, "slow_call",
             {{"method", method_.label},
              {"name", RequestName()},
              {"peer", info_->server_context()->peer()},
              {"code",
               absl::StatusCodeToString(static_cast<absl::StatusCode>(code))},
              {"duration_ms", absl::ToDoubleMilliseconds(duration)}});
  }

  // The name the request gave; "" when it is not known. The request is still
  // alive: its call has not finished.
  std::string RequestName() const {
    if (!stream_name_.empty() || request_ == nullptr) return stream_name_;
    return NameOfRaw(*request_, method_.request);
  }

  RpcMetrics* const metrics_;
  grpc::experimental::ServerRpcInfo* const info_;
  Method& method_;
  const absl::Time start_;
  const grpc::ByteBuffer* request_ = nullptr;
  std::string stream_name_;
};

class RpcMetrics::Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(RpcMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new Interceptor(metrics_, info);
  }

 private:
  RpcMetrics* const metrics_;
};

RpcMetrics::RpcMetrics(absl::Duration slow_call)
    : slow_call_(slow_call), other_(std::make_unique<Method>("other")) {
  const google::protobuf::DescriptorPool* pool =
      google::protobuf::DescriptorPool::generated_pool();
  for (const char* service : {v1::VariableService::service_full_name(),
                              v1::AdminService::service_full_name()}) {
    const google::protobuf::ServiceDescriptor* descriptor =
        pool->FindServiceByName(service);
    for (int i = 0; i < descriptor->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* m = descriptor->method(i);
      auto method = std::make_unique<Method>(
          absl::StrCat(descriptor->name(), "/", m->name()));
      method->request = m->input_type();
      methods_.emplace(absl::StrCat("/", service, "/", m->name()),
                       std::move(method));
    }
  }
  // gRPC's health service: raw bytes, no variable named.
  for (const char* name : {"Check", "Watch"}) {
    methods_.emplace(absl::StrCat("/grpc.health.v1.Health/", name),
                     std::make_unique<Method>(absl::StrCat("Health/", name)));
  }
}

RpcMetrics::~RpcMetrics() = default;

RpcMetrics::Method& RpcMetrics::Find(const char* full_name) {
  auto it = methods_.find(full_name);
  return it == methods_.end() ? *other_ : *it->second;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::InterceptorFactory() {
  return std::make_unique<Factory>(this);
}

void RpcMetrics::Register(metrics::Registry& registry) const {
  // Methods in label order, for a stable exposition.
  std::vector<const Method*> methods;
  for (const auto& [name, method] : methods_) methods.push_back(method.get());
  methods.push_back(other_.get());
  std::sort(
      methods.begin(), methods.end(),
      [](const Method* a, const Method* b) { return a->label < b->label; });
  // Series of methods never called are left out.
  registry.Add("varscope_rpc_requests_total", Type::kCounter,
               "Calls finished, by method and gRPC status code.",
               [methods](SeriesWriter& w) {
                 for (const Method* m : methods) {
                   for (int code = 0; code < kCodes; ++code) {
                     const double calls = m->calls[code].value();
                     if (calls == 0) continue;
                     w.Value(
                         {{"method", m->label},
                          {"code", absl::StatusCodeToString(
                                       static_cast<absl::StatusCode>(code))}},
                         calls);
                   }
                 }
               });
  registry.Add("varscope_rpc_duration_seconds", Type::kHistogram,
               "Time from a call's start to its status, by method.",
               [methods](SeriesWriter& w) {
                 for (const Method* m : methods) {
                   metrics::Histogram::Snapshot s = m->seconds.Read();
                   if (s.cumulative.back() == 0) continue;
                   w.Histogram({{"method", m->label}}, s);
                 }
               });
  registry.AddCounter("varscope_rpc_received_bytes_total",
                      "Bytes of request messages received (serialized).",
                      received_bytes_);
  registry.AddCounter("varscope_rpc_sent_bytes_total",
                      "Bytes of response messages sent (serialized).",
                      sent_bytes_);
}

namespace {

// The fields of /proc/self/stat after the command (field 3 onwards), or
// none when it cannot be read.
std::vector<std::string> ProcStat() {
  std::ifstream file("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(file)),
                   std::istreambuf_iterator<char>());
  const size_t end = text.rfind(')');  // the command may hold spaces
  if (end == std::string::npos) return {};
  return absl::StrSplit(text.substr(end + 2), ' ', absl::SkipEmpty());
}

double ProcStatField(const std::vector<std::string>& fields, int number) {
  double value = 0;
  const size_t index = static_cast<size_t>(number - 3);
  if (index < fields.size()) (void)absl::SimpleAtod(fields[index], &value);
  return value;
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory's own descriptor
}

void AddProcessMetrics(metrics::Registry& r, absl::Time start_time) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  r.AddValue("process_cpu_seconds_total", Type::kCounter,
             "User and system CPU time spent in seconds.", [ticks] {
               const std::vector<std::string> f = ProcStat();
               return (ProcStatField(f, 14) + ProcStatField(f, 15)) / ticks;
             });
  r.AddValue("process_resident_memory_bytes", Type::kGauge,
             "Resident memory size in bytes.",
             [page] { return ProcStatField(ProcStat(), 24) * page; });
  r.AddValue("process_virtual_memory_bytes", Type::kGauge,
             "Virtual memory size in bytes.",
             [] { return ProcStatField(ProcStat(), 23); });
  r.AddValue("process_open_fds", Type::kGauge,
             "Number of open file descriptors.", OpenFds);
  r.AddValue("process_max_fds", Type::kGauge,
             "Maximum number of open file descriptors.", [] {
               rlimit limit{};
               getrlimit(RLIMIT_NOFILE, &limit);
               return static_cast<double>(limit.rlim_cur);
             });
  r.AddValue("process_threads", Type::kGauge, "Number of OS threads.",
             [] { return ProcStatField(ProcStat(), 20); });
  r.AddValue("process_start_time_seconds", Type::kGauge,
             "Start time of the process since unix epoch in seconds.",
             [start_time] {
               return absl::ToDoubleSeconds(start_time - absl::UnixEpoch());
             });
}

void AddTableMetrics(metrics::Registry& r, const MonitoredParts& parts) {
  const VariableTable& table = *parts.table;
  const VariableTable::Counters& c = table.counters();
  const embedding::EmbeddingStore* embeddings = parts.embeddings;
  r.Add("varscope_variables", Type::kGauge, "Variables held, by kind.",
        [&table](SeriesWriter& w) {
          const VariableTable::Totals totals = table.GetTotals();
          w.Value({{"kind", "dense"}}, static_cast<double>(totals.variables));
          w.Value({{"kind", "embedding"}},
                  static_cast<double>(totals.embedding_variables));
        });
  r.Add("varscope_variable_bytes", Type::kGauge,
        "Bytes of variable values held in memory, by kind (embedding: the "
        "rows in memory; rows beyond --memory-budget are on disk only).",
        [&table, embeddings](SeriesWriter& w) {
          w.Value({{"kind", "dense"}, {"where", "memory"}},
                  static_cast<double>(table.GetTotals().bytes));
          w.Value({{"kind", "embedding"}, {"where", "memory"}},
                  embeddings == nullptr
                      ? 0.0
                      : static_cast<double>(embeddings->ResidentBytes()));
        });
  r.AddCounter("varscope_updates_applied_total",
               "Updates applied (each update of a batch counts).",
               c.updates_applied);
  r.AddCounter("varscope_duplicate_updates_skipped_total",
               "Update batches answered with their first result (exactly-once "
               "repeats), changing nothing.",
               c.duplicates_skipped);
  r.AddValue("varscope_intents_kept", Type::kGauge,
             "Intents of steps split over shards that this server keeps as "
             "their keeper: steps that workers left or are still making (a "
             "recovery pass completes the old ones).",
             [&table] { return static_cast<double>(table.intents().Kept()); });
  r.AddCounter("varscope_flushes_total",
               "Store writes of pending changes (interval flushes, rewrites "
               "after a failed write).",
               c.flushes);
  r.AddCounter("varscope_flush_failures_total",
               "Store writes of pending changes that failed.",
               c.flush_failures);
  r.AddHistogram("varscope_flush_duration_seconds",
                 "Time of a store write of pending changes.", c.flush_seconds);
  if (parts.durability.mode == Durability::Mode::kInterval) {
    r.AddValue(
        "varscope_last_flush_age_seconds", Type::kGauge,
        "Seconds since the store last held every change (interval "
        "durability): what a crash would lose.",
        [&c] {
          return absl::ToDoubleSeconds(
              absl::Now() - absl::FromUnixMicros(c.all_written_micros.load()));
        });
  }
}

void AddSyncMetrics(metrics::Registry& r, SyncReplicas& sync) {
  r.AddCounter("varscope_sync_stale_gradients_dropped_total",
               "Sync-replica contributions dropped because the global step "
               "had passed their step.",
               sync.counters().stale_dropped);
  r.AddCounter("varscope_sync_waits_total",
               "WaitForStep calls that had to wait for the global step.",
               sync.counters().waits);
  r.AddValue("varscope_sync_waiting", Type::kGauge,
             "WaitForStep calls waiting now.",
             [&sync] { return static_cast<double>(sync.Waiting()); });
}

// Long: a flat list of registrations, one per metric, read as a table.
void AddStoreMetrics(metrics::Registry& r, Storage& storage) {
  // One read of RocksDB's figures per family.
  using Stats = Storage::Stats;
  auto stat = [&r, &storage](std::string name, Type type, std::string help,
                             std::function<double(const Stats&)> value) {
    r.Add(std::move(name), type, std::move(help),
          [&storage, value = std::move(value)](SeriesWriter& w) {
            w.Value({}, value(storage.GetStats()));
          });
  };
  // Figures of the open store; left out while it is being reopened.
  auto now = [&r, &storage](std::string name, std::string help,
                            std::function<double(const Stats::Now&)> value) {
    r.Add(std::move(name), Type::kGauge, std::move(help),
          [&storage, value = std::move(value)](SeriesWriter& w) {
            const Stats stats = storage.GetStats();
            if (stats.now.has_value()) w.Value({}, value(*stats.now));
          });
  };
  stat("varscope_wal_written_bytes_total", Type::kCounter,
       "Bytes written to RocksDB's write-ahead log.",
       [](const Stats& s) { return s.wal_written_bytes; });
  stat("varscope_wal_syncs_total", Type::kCounter,
       "fsyncs of the write-ahead log.",
       [](const Stats& s) { return s.wal_syncs; });
  stat("varscope_wal_replayed_bytes", Type::kGauge,
       "Bytes of write-ahead log replayed when the store opened.",
       [](const Stats& s) { return s.wal_replayed_bytes; });
  stat("varscope_rocksdb_stall_seconds_total", Type::kCounter,
       "Time RocksDB stalled writes (memtables or level 0 full, pending "
       "compaction).",
       [](const Stats& s) { return s.stall_micros / 1e6; });
  stat("varscope_rocksdb_compaction_read_bytes_total", Type::kCounter,
       "Bytes read by RocksDB compactions.",
       [](const Stats& s) { return s.compaction_read_bytes; });
  stat("varscope_rocksdb_compaction_written_bytes_total", Type::kCounter,
       "Bytes written by RocksDB compactions.",
       [](const Stats& s) { return s.compaction_written_bytes; });
  stat("varscope_rocksdb_flush_written_bytes_total", Type::kCounter,
       "Bytes written by RocksDB memtable flushes.",
       [](const Stats& s) { return s.memtable_flush_bytes; });
  r.Add("varscope_store_disk_bytes", Type::kGauge,
        "Bytes of the store's files on disk, by kind (sst: table files, "
        "blob: large values).",
        [&storage](SeriesWriter& w) {
          const Stats stats = storage.GetStats();
          if (!stats.now.has_value()) return;
          w.Value({{"kind", "blob"}}, stats.now->blob_bytes);
          w.Value({{"kind", "sst"}}, stats.now->sst_bytes);
        });
  now("varscope_rocksdb_memtable_bytes", "Bytes of RocksDB's memtables.",
      [](const Stats::Now& s) { return s.memtable_bytes; });
  now("varscope_rocksdb_pending_compaction_bytes",
      "Bytes RocksDB estimates compaction has to rewrite.",
      [](const Stats::Now& s) { return s.pending_compaction_bytes; });
  now("varscope_rocksdb_running_compactions",
      "RocksDB compactions running now.",
      [](const Stats::Now& s) { return s.running_compactions; });
  now("varscope_rocksdb_running_flushes",
      "RocksDB memtable flushes running now.",
      [](const Stats::Now& s) { return s.running_flushes; });
  now("varscope_rocksdb_write_stopped",
      "1 while RocksDB stops writes (a hard stall), else 0.",
      [](const Stats::Now& s) { return s.write_stopped ? 1 : 0; });
  now("varscope_rocksdb_delayed_write_rate_bytes",
      "Bytes/s RocksDB slows writes down to (a soft stall); 0 when it does "
      "not.",
      [](const Stats::Now& s) { return s.delayed_write_rate; });
  r.Add("varscope_store_errors_total", Type::kCounter,
        "Store writes that failed, by kind (the status code: "
        "RESOURCE_EXHAUSTED for a full disk, UNAVAILABLE for I/O errors).",
        [&storage](SeriesWriter& w) {
          const Stats stats = storage.GetStats();
          for (size_t code = 0; code < stats.write_errors.size(); ++code) {
            // The kinds a store write fails with are always there, from 0,
            // so that the first error is an increase.
            const auto kind = static_cast<absl::StatusCode>(code);
            if (stats.write_errors[code] == 0 &&
                kind != absl::StatusCode::kResourceExhausted &&
                kind != absl::StatusCode::kUnavailable) {
              continue;
            }
            w.Value({{"kind", absl::StatusCodeToString(kind)}},
                    static_cast<double>(stats.write_errors[code]));
          }
        });
}

}  // namespace

std::unique_ptr<metrics::Registry> ServerRegistry(const MonitoredParts& parts) {
  auto registry = std::make_unique<metrics::Registry>();
  parts.rpc->Register(*registry);
  AddTableMetrics(*registry, parts);
  AddSyncMetrics(*registry, *parts.sync);
  AddStoreMetrics(*registry, *parts.storage);
  AddProcessMetrics(*registry, parts.start_time);
  return registry;
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address, const metrics::Registry* registry) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-listen needs HOST:PORT, not '", address, "'"));
  }
  absl::string_view host = absl::string_view(address).substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  endpoint->http_ = std::make_unique<httplib::Server>();
  endpoint->http_->Get(
      "/metrics", [registry](const httplib::Request&, httplib::Response& res) {
        res.set_content(registry->Exposition(), metrics::kContentType);
      });
  const std::string bind_host(host);
  endpoint->port_ =
      port == 0 ? endpoint->http_->bind_to_any_port(bind_host)
                : (endpoint->http_->bind_to_port(bind_host, port) ? port : -1);
  if (endpoint->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("Cannot serve metrics on ", address));
  }
  httplib::Server* http = endpoint->http_.get();
  endpoint->thread_ = std::thread([http] { http->listen_after_bind(); });
  // Stop only stops a server that runs: wait until it does (its first step).
  while (!http->is_running()) absl::SleepFor(absl::Milliseconds(1));
  return endpoint;
}

void MetricsEndpoint::Stop() {
  if (!thread_.joinable()) return;
  http_->stop();
  thread_.join();
}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

}  // namespace varscope::server
