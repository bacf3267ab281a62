// varscope_loadgen: runs one workload against Varscope or Redis with N
// concurrent clients (threads, each on its own TCP connection), in closed
// loop for a fixed time, several times, and prints one JSON line with every
// run's throughput and latency percentiles. bench/run.sh drives it and
// bench/report.py turns its lines into the comparison table.
//
//   varscope_loadgen --backend=varscope --address=127.0.0.1:7070
//       --workload=read --bytes=1048576 --clients=16 --runs=5 --seconds=2
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "bench/connection.h"
#include "common/mutex_checks.h"
#include "common/status.h"

namespace varscope::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string backend = "varscope";
  std::string address;
  std::string workload = "read";
  std::string redis_update = "watch";
  std::string label;
  int64_t bytes = 4096;
  int clients = 1;
  int runs = 5;
  double seconds = 2;
  double warmup_seconds = 1;
  int variables = 100;
  int64_t train_bytes = int64_t{16} << 20;
  int64_t rows = 10'000'000;
  int64_t width = 64;
  int64_t batch_rows = 1024;
};

// One operation of client `client`.
using Op = std::function<absl::Status(Connection&, int client)>;

struct RunStats {
  int64_t ops = 0;
  double seconds = 0;
  double p50_us = 0;
  double p99_us = 0;
};

double Percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t i =
      std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()));
  return sorted[i];
}

// Every client runs `op` back to back until `seconds` have passed; the run
// ends when the last one finishes its operation in flight.
absl::StatusOr<RunStats> TimedRun(
    std::vector<std::unique_ptr<Connection>>& connections, double seconds,
    const Op& op) {
  const int n = static_cast<int>(connections.size());
  std::vector<std::vector<double>> latencies(n);
  std::vector<Clock::time_point> ends(n);
  std::vector<absl::Status> errors(n);
  absl::Notification go;
  Clock::time_point start, deadline;
  std::vector<std::thread> threads;
  for (int c = 0; c < n; ++c) {
    threads.emplace_back([&, c] {
      go.WaitForNotification();
      Clock::time_point now = Clock::now();
      while (now < deadline) {
        errors[c] = op(*connections[c], c);
        const Clock::time_point done = Clock::now();
        if (!errors[c].ok()) break;
        latencies[c].push_back(
            std::chrono::duration<double, std::micro>(done - now).count());
        now = done;
      }
      ends[c] = now;
    });
  }
  start = Clock::now();
  deadline = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(seconds));
  go.Notify();
  for (std::thread& t : threads) t.join();
  for (const absl::Status& error : errors) VS_RETURN_IF_ERROR(error);
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  RunStats stats;
  stats.ops = static_cast<int64_t>(all.size());
  stats.seconds = std::chrono::duration<double>(
                      *std::max_element(ends.begin(), ends.end()) - start)
                      .count();
  stats.p50_us = Percentile(all, 0.50);
  stats.p99_us = Percentile(all, 0.99);
  return stats;
}

// `bytes` of float32 values, different per `seed`, small enough that sums
// of many stay finite: a random block of 64 KiB repeated, which is quick to
// make for gigabytes of client buffers and still incompressible enough.
std::string Floats(int64_t bytes, int seed) {
  constexpr size_t kBlock = 16384;
  std::vector<float> block(kBlock);
  std::mt19937 gen(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> dist(-1e-3f, 1e-3f);
  for (float& v : block) v = dist(gen);
  std::string out(static_cast<size_t>(bytes), '\0');
  for (size_t at = 0; at < out.size(); at += kBlock * sizeof(float)) {
    std::memcpy(out.data() + at, block.data(),
                std::min(kBlock * sizeof(float), out.size() - at));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Connection>> Connect(const Flags& flags) {
  if (flags.backend == "varscope") return ConnectVarscope(flags.address);
  if (flags.backend == "redis") {
    return ConnectRedis(flags.address, flags.redis_update == "lossy"
                                           ? RedisUpdate::kLossy
                                           : RedisUpdate::kWatch);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("Unknown backend ", flags.backend));
}

// Per-client data of a workload, built before the timed runs.
struct Workload {
  Op op;
  int64_t payload_bytes = 0;  // tensor bytes an operation moves
};

absl::StatusOr<Workload> Build(const Flags& flags, Connection& setup) {
  const int n = flags.clients;
  // Keys name the shape so that workloads never meet a variable of another
  // size.
  const std::string key =
      absl::StrCat("bench/", flags.workload, "_", flags.bytes);
  Workload w;
  if (flags.workload == "read" || flags.workload == "write" ||
      flags.workload == "accumulate") {
    VS_RETURN_IF_ERROR(setup.Prepare(key, Floats(flags.bytes, 0)));
    auto values = std::make_shared<std::vector<std::string>>();
    for (int c = 0; c < n; ++c) values->push_back(Floats(flags.bytes, c + 1));
    const int64_t bytes = flags.bytes;
    w.payload_bytes = bytes;
    if (flags.workload == "read") {
      w.op = [key, bytes](Connection& conn, int) {
        return conn.Read(key, static_cast<size_t>(bytes));
      };
    } else if (flags.workload == "write") {
      w.op = [key, values](Connection& conn, int c) {
        return conn.Write(key, (*values)[c]);
      };
    } else {
      w.op = [key, values](Connection& conn, int c) {
        return conn.Accumulate(key, (*values)[c]);
      };
    }
    return w;
  }
  if (flags.workload == "train") {
    const int64_t each = flags.train_bytes / flags.variables / 4 * 4;
    std::vector<std::string> keys;
    for (int i = 0; i < flags.variables; ++i) {
      keys.push_back(absl::StrFormat("bench/train/w%03d", i));
      VS_RETURN_IF_ERROR(setup.Prepare(keys.back(), Floats(each, i)));
    }
    auto grads = std::make_shared<std::vector<std::vector<std::string>>>(n);
    for (int c = 0; c < n; ++c) {
      for (int i = 0; i < flags.variables; ++i) {
        (*grads)[c].push_back(Floats(each, 1000 * (c + 1) + i));
      }
    }
    w.payload_bytes = 2 * each * flags.variables;  // pulled and pushed
    w.op = [keys, grads](Connection& conn, int c) {
      return conn.TrainStep(keys, (*grads)[c]);
    };
    return w;
  }
  if (flags.workload == "gather" || flags.workload == "scatter" ||
      flags.workload == "adagrad") {
    const std::string table =
        absl::StrCat("bench/table_", flags.rows, "x", flags.width);
    VS_RETURN_IF_ERROR(setup.PrepareTable(table, flags.rows, flags.width));
    // Random rows; every client cycles through 16 index sets of its own.
    constexpr int kSets = 16;
    auto indices =
        std::make_shared<std::vector<std::vector<std::vector<int64_t>>>>(n);
    for (int c = 0; c < n; ++c) {
      std::mt19937_64 gen(static_cast<uint64_t>(c));
      std::uniform_int_distribution<int64_t> row(0, flags.rows - 1);
      for (int s = 0; s < kSets; ++s) {
        (*indices)[c].emplace_back(static_cast<size_t>(flags.batch_rows));
        for (int64_t& i : (*indices)[c].back()) i = row(gen);
      }
    }
    auto next = std::make_shared<std::vector<std::atomic<int>>>(n);
    const int64_t row_bytes = flags.width * static_cast<int64_t>(sizeof(float));
    w.payload_bytes = flags.batch_rows * row_bytes;
    if (flags.workload == "gather") {
      w.op = [table, indices, next](Connection& conn, int c) {
        const int s = (*next)[c].fetch_add(1) % kSets;
        return conn.Gather(table, (*indices)[c][s]);
      };
    } else {
      auto rows = std::make_shared<std::string>(
          Floats(flags.batch_rows * row_bytes, 7));
      const bool adagrad = flags.workload == "adagrad";
      w.op = [table, indices, next, rows, adagrad](Connection& conn, int c) {
        const int s = (*next)[c].fetch_add(1) % kSets;
        return adagrad ? conn.SparseAdagrad(table, (*indices)[c][s], *rows)
                       : conn.Scatter(table, (*indices)[c][s], *rows);
      };
    }
    return w;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("Unknown workload ", flags.workload));
}

absl::Status Main(const Flags& flags) {
  std::vector<std::unique_ptr<Connection>> connections;
  for (int c = 0; c < flags.clients; ++c) {
    VS_ASSIGN_OR_RETURN(connections.emplace_back(), Connect(flags));
  }
  VS_ASSIGN_OR_RETURN(Workload workload, Build(flags, *connections[0]));
  if (flags.warmup_seconds > 0) {
    VS_RETURN_IF_ERROR(
        TimedRun(connections, flags.warmup_seconds, workload.op).status());
  }
  auto conflicts = [&] {
    int64_t total = 0;
    for (const auto& c : connections) total += c->conflicts();
    return total;
  };
  const int64_t conflicts_before = conflicts();
  std::vector<std::string> runs;
  int64_t ops = 0;
  for (int r = 0; r < flags.runs; ++r) {
    VS_ASSIGN_OR_RETURN(RunStats s,
                        TimedRun(connections, flags.seconds, workload.op));
    ops += s.ops;
    runs.push_back(absl::StrFormat(
        R"({"ops":%d,"seconds":%.6f,"p50_us":%.1f,"p99_us":%.1f})", s.ops,
        s.seconds, s.p50_us, s.p99_us));
  }
  const std::string variant =
      flags.backend == "redis" &&
              (flags.workload == "accumulate" || flags.workload == "train")
          ? flags.redis_update
          : "";
  absl::PrintF(R"({"label":"%s","backend":"%s","variant":"%s","workload":"%s",)"
               R"("bytes":%d,"clients":%d,"payload_bytes":%d,"conflicts":%d,)"
               R"("ops":%d,"runs":[%s]})"
               "\n",
               flags.label, flags.backend, variant, flags.workload,
               flags.workload == "train" ? flags.train_bytes
               : flags.workload == "gather" || flags.workload == "scatter" ||
                       flags.workload == "adagrad"
                   ? flags.rows
                   : flags.bytes,
               flags.clients, workload.payload_bytes,
               conflicts() - conflicts_before, ops, absl::StrJoin(runs, ","));
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace
}  // namespace varscope::bench

int main(int argc, char** argv) {
  varscope::SkipMutexDeadlockDetection();
  varscope::bench::Flags flags;
  CLI::App app{"varscope_loadgen: one benchmark workload against one store"};
  app.add_option("--backend", flags.backend, "varscope or redis")
      ->check(CLI::IsMember({"varscope", "redis"}))
      ->capture_default_str();
  app.add_option("--address", flags.address, "HOST:PORT of the server")
      ->required();
  app.add_option("--workload", flags.workload,
                 "read, write, accumulate, train, gather, scatter (add rows) "
                 "or adagrad (a sparse Adagrad step on rows)")
      ->check(CLI::IsMember({"read", "write", "accumulate", "train", "gather",
                             "scatter", "adagrad"}))
      ->capture_default_str();
  app.add_option("--redis-update", flags.redis_update,
                 "Redis read-modify-write: watch (WATCH/MULTI/EXEC, no "
                 "lost additions) or lossy (GET then SET)")
      ->check(CLI::IsMember({"watch", "lossy"}))
      ->capture_default_str();
  app.add_option("--label", flags.label,
                 "copied to the output (e.g. the durability mode)");
  // A positive numeric option with its default shown.
  auto positive = [&app](const std::string& name, auto& value,
                         const std::string& help) {
    app.add_option(name, value, help)
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
  };
  positive("--bytes", flags.bytes,
           "read/write/accumulate: bytes of the variable");
  positive("--clients", flags.clients, "concurrent clients");
  positive("--runs", flags.runs, "timed runs");
  positive("--seconds", flags.seconds, "length of each run");
  app.add_option("--warmup-seconds", flags.warmup_seconds,
                 "untimed run before the timed ones")
      ->capture_default_str();
  positive("--variables", flags.variables, "train: variables per step");
  positive("--train-bytes", flags.train_bytes,
           "train: bytes of all variables together");
  positive("--rows", flags.rows, "gather/scatter/adagrad: rows of the table");
  positive("--width", flags.width, "gather/scatter/adagrad: floats per row");
  positive("--batch-rows", flags.batch_rows,
           "gather/scatter/adagrad: rows per operation");
  CLI11_PARSE(app, argc, argv);
  const absl::Status status = varscope::bench::Main(flags);
  if (!status.ok()) {
    std::fprintf(stderr, "varscope_loadgen: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
