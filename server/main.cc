// varscoped: the Varscope parameter server.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/cluster.h"
#include "common/mutex_checks.h"
#include "common/version.h"
#include "server/base/log.h"
#include "server/service/cluster_identity.h"
#include "server/service/server.h"
#include "server/table/durability.h"

namespace {

// Exit codes.
constexpr int kExitError = 1;  // could not start, or stopped by an error
constexpr int kExitUsage = 2;  // bad flags or TF_CONFIG

int g_signal_pipe[2];

void OnSignal(int signal) {
  const unsigned char byte = static_cast<unsigned char>(signal);
  (void)!write(g_signal_pipe[1], &byte, 1);
}

// The identity the cluster flags configure, else (with none of them given)
// the one a parameter server task's TF_CONFIG does.
absl::StatusOr<std::optional<varscope::v1::ClusterIdentity>>
IdentityFromFlagsOrTfConfig(const varscope::server::ClusterOptions& flags,
                            bool flags_given) {
  if (flags_given) return varscope::server::ConfiguredIdentity(flags);
  const char* tf_config = std::getenv("TF_CONFIG");
  absl::StatusOr<std::optional<varscope::server::ClusterOptions>> options =
      varscope::server::ClusterOptionsFromTfConfig(
          tf_config == nullptr ? "" : tf_config);
  if (options.ok() && options->has_value()) {
    return varscope::server::ConfiguredIdentity(**options);
  }
  if (!options.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.status().message(),
                     "; pass --cluster and --shard-index, or fix TF_CONFIG"));
  }
  return std::nullopt;
}

// A byte count with an optional unit: 1048576, 64KiB, 1GiB, 1GB (any
// case; KB, MB, GB are powers of 1000, KiB, MiB, GiB of 1024).
CLI::Validator ByteSize() { return CLI::AsSizeValue(/*kb_is_1000=*/true); }

}  // namespace

int main(int argc, char** argv) {
  varscope::SkipMutexDeadlockDetection();
  varscope::server::ServerOptions options;
  CLI::App app{"varscoped: the Varscope parameter server"};
  // A later flag overrides an earlier one, so flags given to a container
  // take effect after the image's --listen and --data-dir defaults.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--listen", options.listen_address,
                 "HOST:PORT to serve on (port 0 picks a free port)")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir, "RocksDB data directory")
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--durability",
         [&](const std::string& text) {
           absl::StatusOr<varscope::server::Durability> durability =
               varscope::server::ParseDurability(text);
           if (!durability.ok()) {
             throw CLI::ValidationError(
                 "--durability", std::string(durability.status().message()));
           }
           options.table.durability = *durability;
         },
         "When an acknowledged write is on disk. wal: in the write-ahead "
         "log before the reply (survives kill -9); sync: also fsynced, one "
         "fsync per group of concurrent writes (survives power loss); "
         "interval=DURATION (e.g. interval=200ms): applied in memory and "
         "acknowledged at once, everything changed written as one "
         "consistent snapshot every DURATION and at shutdown (a crash loses "
         "at most the last DURATION)")
      ->default_str("wal");
  app.add_option("--max-variable-bytes", options.table.max_variable_bytes,
                 "largest variable (or part) in bytes")
      ->transform(ByteSize())
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-message-bytes", options.max_message_bytes,
                 "largest message received or sent (a Read whose reply would "
                 "be larger fails: the clients then stream); larger "
                 "variables move by streams")
      ->transform(ByteSize())
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{INT_MAX}));
  app.add_option("--max-pending-reply-bytes", options.max_pending_reply_bytes,
                 "bytes that replies not yet received by their clients may "
                 "hold; beyond, reads fail with RESOURCE_EXHAUSTED until "
                 "slow readers catch up")
      ->transform(ByteSize())
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--chunk-bytes", options.table.chunk_bytes,
                 "target size of a stored chunk (whole rows) for new "
                 "variables")
      ->transform(ByteSize())
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--memory-budget", options.memory_budget,
                 "Bytes embedding variables' rows may take in memory; rows "
                 "beyond live only on disk and are read through (0: no "
                 "budget)")
      ->transform(ByteSize())
      ->check(CLI::NonNegativeNumber);
  app.add_option("--metrics-listen", options.metrics_listen,
                 "HOST:PORT to serve Prometheus metrics on (GET /metrics); "
                 "default: off");
  double drain_seconds = 10;
  app.add_option("--drain-seconds", drain_seconds,
                 "on SIGTERM or SIGINT, how long calls in flight may finish "
                 "before the rest are cancelled and the store is closed "
                 "(keep it below the stop timeout of what stops the server)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  double slow_call_ms = -1;
  app.add_option("--slow-call-ms", slow_call_ms,
                 "log calls slower than this many milliseconds (event "
                 "slow_call); default: off")
      ->check(CLI::NonNegativeNumber);
  varscope::server::log::Level log_level = varscope::server::log::Level::kInfo;
  app.add_option_function<std::string>(
         "--log-level",
         [&](const std::string& text) {
           auto level = varscope::server::log::ParseLevel(text);
           if (!level.ok()) {
             throw CLI::ValidationError("--log-level",
                                        std::string(level.status().message()));
           }
           log_level = *level;
         },
         "debug, info, warning or error: log events at this level and above")
      ->default_str("info");
  varscope::server::log::Format log_format =
      varscope::server::log::Format::kText;
  app.add_option_function<std::string>(
         "--log-format",
         [&](const std::string& text) {
           auto format = varscope::server::log::ParseFormat(text);
           if (!format.ok()) {
             throw CLI::ValidationError("--log-format",
                                        std::string(format.status().message()));
           }
           log_format = *format;
         },
         "text or json: one line per event on stderr")
      ->default_str("text");
  app.set_version_flag("--version", varscope::VersionLine("varscoped"));
  app.add_option("--tls-cert-file", options.security.tls_cert_file,
                 "PEM certificate chain: serve TLS (with --tls-key-file). "
                 "Reread with the key and client CA on SIGHUP");
  app.add_option("--tls-key-file", options.security.tls_key_file,
                 "PEM private key of --tls-cert-file");
  app.add_option("--tls-client-ca-file", options.security.tls_client_ca_file,
                 "PEM CA certificate(s): every client must present a "
                 "certificate they signed (mutual TLS; needs TLS)");
  app.add_option("--auth-token-file", options.security.auth_token_file,
                 "grants, one per line: TOKEN [read|write|admin] "
                 "[scope=PREFIX] or cert:NAME ROLE [scope=PREFIX]; every "
                 "call but health checks must send 'authorization: Bearer "
                 "<token>' or a listed client certificate (needs TLS). "
                 "Reread on SIGHUP");
  app.add_option("--backup-root", options.backup_root,
                 "directory under which checkpoint and backup calls may "
                 "write (relative paths are taken under it); default: none, "
                 "they are refused");
  varscope::server::ClusterOptions cluster;
  CLI::Option* cluster_flags[] = {
      app.add_option_function<std::string>(
          "--cluster",
          [&](const std::string& text) {
            cluster.shards = absl::StrSplit(text, ',');
          },
          "every shard's HOST:PORT, comma-separated, in cluster order (the "
          "order every worker lists them in); with --shard-index. Recorded "
          "in the store at its first start: a later start as another shard "
          "is refused. Default: TF_CONFIG's cluster.ps and task.index when "
          "its task.type is \"ps\", else the recorded identity, else a "
          "standalone server"),
      app.add_option("--shard-index", cluster.shard_index,
                     "this server's position in --cluster, from 0")
          ->check(CLI::Range(int64_t{0}, int64_t{INT32_MAX})),
      app.add_option("--cluster-id", cluster.cluster_id,
                     "the cluster's id (default: a hash of --cluster, the "
                     "same on every shard)")};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  namespace log = varscope::server::log;
  log::Configure(log_level, log_format);
  if (slow_call_ms >= 0) {
    options.slow_call = absl::Milliseconds(slow_call_ms);
  }
  if (options.memory_budget > 0) {
    // Under a budget the calls' large buffers go back to the system when
    // freed: by default glibc raises its mmap threshold after such a free
    // and then keeps those buffers in its heaps (measured: 80 MB more RSS
    // while a table 3x a 32 MiB budget was imported).
    mallopt(M_MMAP_THRESHOLD, 128 << 10);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
  }
  log::Log(log::Level::kInfo, "start",
           {{"version", varscope::Version()},
            {"commit", varscope::GitCommit()},
            {"listen", options.listen_address},
            {"data_dir", options.data_dir},
            {"durability",
             varscope::server::DurabilityToString(options.table.durability)},
            {"metrics_listen", options.metrics_listen},
            {"flags", absl::StrJoin(argv + 1, argv + argc, " ")}});
  {
    const bool flags_given =
        std::any_of(std::begin(cluster_flags), std::end(cluster_flags),
                    [](const CLI::Option* o) { return o->count() > 0; });
    absl::StatusOr<std::optional<varscope::v1::ClusterIdentity>> identity =
        IdentityFromFlagsOrTfConfig(cluster, flags_given);
    if (!identity.ok()) {
      std::fprintf(stderr, "varscoped: %s\n",
                   identity.status().ToString().c_str());
      return kExitUsage;
    }
    options.cluster = *std::move(identity);
  }

  // A malformed token file is bad configuration, as a bad flag.
  if (!options.security.auth_token_file.empty()) {
    absl::Status tokens =
        varscope::server::AccessList::Load(options.security.auth_token_file)
            .status();
    if (!tokens.ok()) {
      std::fprintf(stderr, "varscoped: %s\n", tokens.ToString().c_str());
      return kExitUsage;
    }
  }

  // SIGINT, SIGTERM and SIGHUP may arrive on any thread (gRPC starts some
  // before main): the handler only writes the signal number to a pipe that this
  // thread waits on.
  if (pipe(g_signal_pipe) != 0) {
    std::perror("varscoped: pipe");
    return kExitError;
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGHUP, &action, nullptr);

  const absl::Time start = absl::Now();
  auto server = varscope::server::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "varscoped: %s\n",
                 std::string(server.status().ToString()).c_str());
    return kExitError;
  }
  const std::string host =
      options.listen_address.substr(0, options.listen_address.rfind(':'));
  const varscope::v1::ClusterIdentity& identity = (*server)->cluster();
  const std::string shard =
      identity.shards().empty()
          ? ""
          : absl::StrCat(", ", varscope::DescribeShard(identity));
  const std::string metrics =
      options.metrics_listen.empty()
          ? ""
          : absl::StrCat(options.metrics_listen.substr(
                             0, options.metrics_listen.rfind(':')),
                         ":", (*server)->metrics_port());
  std::printf(
      "varscoped serving on %s:%d (data dir %s, durability %s%s%s)\n",
      host.c_str(), (*server)->port(), options.data_dir.c_str(),
      varscope::server::DurabilityToString(options.table.durability).c_str(),
      shard.c_str(),
      metrics.empty() ? "" : absl::StrCat(", metrics on ", metrics).c_str());
  std::fflush(stdout);
  log::Log(log::Level::kInfo, "serving",
           {{"address", absl::StrCat(host, ":", (*server)->port())},
            {"metrics", metrics},
            {"cluster", identity.shards().empty()
                            ? std::string()
                            : varscope::DescribeShard(identity)},
            {"seconds", absl::ToDoubleSeconds(absl::Now() - start)}});

  unsigned char signal = 0;
  for (;;) {
    if (read(g_signal_pipe[0], &signal, 1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (signal != SIGHUP) break;
    // A bad new file leaves the old one in force.
    const absl::Status reloaded = (*server)->ReloadSecurity();
    if (reloaded.ok()) {
      log::Log(log::Level::kInfo, "reload",
               {{"token_file", options.security.auth_token_file},
                {"tls_cert_file", options.security.tls_cert_file}});
    } else {
      log::Log(log::Level::kError, "reload_failed",
               {{"token_file", options.security.auth_token_file},
                {"tls_cert_file", options.security.tls_cert_file},
                {"error", reloaded.ToString()}});
    }
  }
  // Calls drain for up to --drain-seconds, then the store is closed.
  const absl::Time stop = absl::Now();
  log::Log(log::Level::kInfo, "shutdown",
           {{"signal", absl::StrCat("SIG", sigabbrev_np(signal))},
            {"drain_seconds", drain_seconds}});
  (*server)->Shutdown(absl::Seconds(drain_seconds));
  server->reset();
  log::Log(log::Level::kInfo, "stopped",
           {{"seconds", absl::ToDoubleSeconds(absl::Now() - stop)}});
  return 0;
}
