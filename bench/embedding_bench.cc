// varscope_embedding_bench: training steps on an embedding variable of a
// running varscoped (EmbeddingLookup of a batch of Zipf-distributed keys,
// then a sparse Adagrad EmbeddingApply of the same keys), one client, in
// closed loop; then the same step on an in-process absl::flat_hash_map (row
// and accumulator per key), the physical limit of one core. Prints rows/s
// per run, the medians and their ratio as one JSON line.
//
//   varscope_embedding_bench --address=127.0.0.1:7070 --keys=1000000
//       --dim=64 --batch=1024 --runs=5 --seconds=3
//
// --workload=lookup measures a table larger than the server's memory
// budget instead: it stores keys 0..keys-1 (EmbeddingImport, skipped when
// the table holds them already), then times lookups of Zipf-drawn keys (the
// hot ones stay in memory; --hot-keys draws them from keys 0..N-1 only, a
// set that fits in memory) and of uniformly drawn keys (mostly cold: read
// from the store), with per-call p50/p99, and the server's resident memory
// (--server-pid) after the import and after the lookups.
//
//   varscope_embedding_bench --address=127.0.0.1:7070 --workload=lookup
//       --keys=50000000 --dim=16 --server-pid=PID
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "common/status.h"

namespace varscope::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string address;
  std::string name = "bench/embedding";
  int64_t keys = 1'000'000;
  int64_t dim = 64;
  int64_t batch = 1024;
  double zipf = 1.1;
  int runs = 5;
  double seconds = 3;
  std::string workload = "train";
  int64_t server_pid = 0;
  int64_t hot_keys = 0;
};

// Keys 0..n-1 drawn with P(k) proportional to 1/(k+1)^s, by inverse CDF.
class Zipf {
 public:
  Zipf(int64_t n, double s) : cdf_(static_cast<size_t>(n)) {
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) {
      sum += 1.0 / std::pow(static_cast<double>(k + 1), s);
      cdf_[static_cast<size_t>(k)] = sum;
    }
    for (double& c : cdf_) c /= sum;
  }
  int64_t operator()(std::mt19937_64& gen) {
    const double u = std::uniform_real_distribution<double>(0, 1)(gen);
    return std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin();
  }

 private:
  std::vector<double> cdf_;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Rows/s of `step` (which handles `batch` rows) over `seconds`, per run.
template <typename Step>
absl::StatusOr<std::vector<double>> Measure(const Flags& flags, int64_t batch,
                                            Step step) {
  std::vector<double> rates;
  for (int run = 0; run < flags.runs; ++run) {
    const Clock::time_point start = Clock::now();
    int64_t rows = 0;
    double elapsed = 0;
    while (elapsed < flags.seconds) {
      VS_RETURN_IF_ERROR(step());
      rows += batch;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    rates.push_back(static_cast<double>(rows) / elapsed);
  }
  return rates;
}

// The p-th percentile of `v`.
double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// VmRSS and VmHWM (the peak) of process `pid` in bytes; 0 without a pid.
std::pair<int64_t, int64_t> ResidentBytes(int64_t pid) {
  int64_t rss = 0, peak = 0;
  if (pid == 0) return {rss, peak};
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  int64_t kib = 0;
  while (status >> key) {
    if ((key == "VmRSS:" || key == "VmHWM:") && status >> kib) {
      (key == "VmRSS:" ? rss : peak) = kib << 10;
    }
  }
  return {rss, peak};
}

std::string Joined(const std::vector<double>& v) {
  return absl::StrJoin(v, ",", [](std::string* o, double x) {
    absl::StrAppendFormat(o, "%.0f", x);
  });
}

// See the file comment: a table beyond the memory budget.
absl::Status LookupMain(const Flags& flags, Client& client) {
  VS_ASSIGN_OR_RETURN(v1::EmbeddingStats stats,
                      client.EmbeddingStat(flags.name));
  const Clock::time_point fill_start = Clock::now();
  constexpr int64_t kImportBatch = 1 << 16;
  for (int64_t first = stats.size(); first < flags.keys;
       first += kImportBatch) {
    const int64_t n = std::min(kImportBatch, flags.keys - first);
    std::vector<int64_t> keys(static_cast<size_t>(n));
    std::iota(keys.begin(), keys.end(), first);
    std::vector<float> values(static_cast<size_t>(n * flags.dim), 0.5f);
    VS_RETURN_IF_ERROR(
        client
            .EmbeddingImport(
                flags.name,
                Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, keys),
                Tensor::FromVector<float>(v1::DT_FLOAT, {n, flags.dim}, values))
            .status());
  }
  const double fill_seconds =
      std::chrono::duration<double>(Clock::now() - fill_start).count();
  const auto [rss_filled, peak_filled] = ResidentBytes(flags.server_pid);

  std::mt19937_64 gen(1);
  Zipf zipf(
      flags.hot_keys > 0 ? std::min(flags.hot_keys, flags.keys) : flags.keys,
      flags.zipf);
  std::uniform_int_distribution<int64_t> uniform(0, flags.keys - 1);
  std::vector<int64_t> keys(static_cast<size_t>(flags.batch));
  // Rows/s per run and every call's latency in microseconds.
  auto measure = [&](auto draw)
      -> absl::StatusOr<std::pair<std::vector<double>, std::vector<double>>> {
    std::vector<double> latencies;
    VS_ASSIGN_OR_RETURN(
        std::vector<double> rates,
        Measure(flags, flags.batch, [&]() -> absl::Status {
          for (int64_t& k : keys) k = draw();
          const Tensor t =
              Tensor::FromVector<int64_t>(v1::DT_INT64, {flags.batch}, keys);
          const Clock::time_point start = Clock::now();
          VS_RETURN_IF_ERROR(client.EmbeddingLookup(flags.name, t).status());
          latencies.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - start)
                  .count());
          return absl::OkStatus();
        }));
    return std::make_pair(std::move(rates), std::move(latencies));
  };
  VS_ASSIGN_OR_RETURN(const auto hot, measure([&] { return zipf(gen); }));
  VS_ASSIGN_OR_RETURN(const auto cold, measure([&] { return uniform(gen); }));
  const auto [rss, peak] = ResidentBytes(flags.server_pid);
  VS_ASSIGN_OR_RETURN(stats, client.EmbeddingStat(flags.name));
  absl::PrintF(
      R"({"workload":"embedding lookup","keys":%d,"dim":%d,"batch":%d,)"
      R"("zipf":%g,"hot_keys":%d,"fill_seconds":%.1f,"hot_rows_per_s":[%s],)"
      R"("hot_median":%.0f,"hot_p50_us":%.0f,"hot_p99_us":%.0f,)"
      R"("cold_rows_per_s":[%s],"cold_median":%.0f,"cold_p50_us":%.0f,)"
      R"("cold_p99_us":%.0f,"stored_keys":%d,"memory_keys":%d,)"
      R"("disk_keys":%d,"memory_bytes":%d,"rss_after_fill":%d,)"
      R"("rss_after_lookups":%d,"peak_rss":%d})"
      "\n",
      flags.keys, flags.dim, flags.batch, flags.zipf, flags.hot_keys,
      fill_seconds, Joined(hot.first), Median(hot.first),
      Percentile(hot.second, 0.5), Percentile(hot.second, 0.99),
      Joined(cold.first), Median(cold.first), Percentile(cold.second, 0.5),
      Percentile(cold.second, 0.99), stats.size(), stats.memory_keys(),
      stats.disk_keys(), stats.memory_bytes(), rss_filled, rss,
      std::max(peak, peak_filled));
  return absl::OkStatus();
}

absl::Status Main(const Flags& flags) {
  std::unique_ptr<Client> client = Client::Connect(flags.address);
  v1::GetEmbeddingVariableRequest get;
  get.set_name(flags.name);
  get.set_mode(v1::AUTO_REUSE);
  get.set_embedding_dim(flags.dim);
  VS_RETURN_IF_ERROR(client->GetEmbeddingVariable(get).status());
  if (flags.workload == "lookup") return LookupMain(flags, *client);
  Zipf zipf(flags.keys, flags.zipf);
  std::mt19937_64 gen(1);
  std::vector<int64_t> keys(static_cast<size_t>(flags.batch));
  const auto draw = [&] {
    for (int64_t& k : keys) k = zipf(gen);
  };
  v1::Optimizer adagrad;
  adagrad.set_learning_rate(0.01);
  adagrad.mutable_adagrad();
  const Tensor gradients(v1::DT_FLOAT, {flags.batch, flags.dim});

  VS_ASSIGN_OR_RETURN(
      const std::vector<double> server,
      Measure(flags, flags.batch, [&]() -> absl::Status {
        draw();
        const Tensor k =
            Tensor::FromVector<int64_t>(v1::DT_INT64, {flags.batch}, keys);
        VS_RETURN_IF_ERROR(client->EmbeddingLookup(flags.name, k).status());
        return client->EmbeddingApply(flags.name, k, gradients, adagrad)
            .status();
      }));
  VS_ASSIGN_OR_RETURN(const v1::EmbeddingStats stats,
                      client->EmbeddingStat(flags.name));

  // The same step on a hash map in this process: copy the rows out, then
  // Adagrad on row and accumulator.
  absl::flat_hash_map<int64_t, std::vector<float>> table;
  std::vector<float> out(static_cast<size_t>(flags.batch * flags.dim));
  const size_t dim = static_cast<size_t>(flags.dim);
  VS_ASSIGN_OR_RETURN(const std::vector<double> local,
                      Measure(flags, flags.batch, [&]() -> absl::Status {
                        draw();
                        for (size_t i = 0; i < keys.size(); ++i) {
                          std::vector<float>& row = table[keys[i]];
                          if (row.empty()) row.assign(2 * dim, 0.1f);
                          std::copy(row.begin(), row.begin() + dim,
                                    out.begin() + i * dim);
                        }
                        for (size_t i = 0; i < keys.size(); ++i) {
                          std::vector<float>& row = table[keys[i]];
                          for (size_t j = 0; j < dim; ++j) {
                            const float g = out[i * dim + j] * 1e-3f;
                            row[dim + j] += g * g;
                            row[j] -= 0.01f * g / std::sqrt(row[dim + j]);
                          }
                        }
                        return absl::OkStatus();
                      }));
  const double s = Median(server), l = Median(local);
  absl::PrintF(R"({"workload":"embedding lookup+adagrad","keys":%d,"dim":%d,)"
               R"("batch":%d,"zipf":%g,"server_rows_per_s":[%s],)"
               R"("server_median":%.0f,"hash_map_rows_per_s":[%s],)"
               R"("hash_map_median":%.0f,"ratio":%.4f,"stored_keys":%d,)"
               R"("memory_keys":%d,"disk_keys":%d,"memory_bytes":%d})"
               "\n",
               flags.keys, flags.dim, flags.batch, flags.zipf, Joined(server),
               s, Joined(local), l, s / l, stats.size(), stats.memory_keys(),
               stats.disk_keys(), stats.memory_bytes());
  return absl::OkStatus();
}

}  // namespace
}  // namespace varscope::bench

int main(int argc, char** argv) {
  varscope::bench::Flags flags;
  CLI::App app{"varscope_embedding_bench: embedding training steps"};
  app.add_option("--address", flags.address, "HOST:PORT of varscoped")
      ->required();
  app.add_option("--name", flags.name, "the embedding variable")
      ->capture_default_str();
  app.add_option("--keys", flags.keys, "distinct keys drawn from")
      ->capture_default_str();
  app.add_option("--dim", flags.dim, "embedding_dim")->capture_default_str();
  app.add_option("--batch", flags.batch, "keys per step")
      ->capture_default_str();
  app.add_option("--zipf", flags.zipf, "Zipf exponent")->capture_default_str();
  app.add_option("--runs", flags.runs, "timed runs")->capture_default_str();
  app.add_option("--seconds", flags.seconds, "length of each run")
      ->capture_default_str();
  app.add_option("--workload", flags.workload,
                 "train (lookup + Adagrad, against a hash map) or lookup (a "
                 "table beyond the memory budget: import, hot and cold "
                 "lookups)")
      ->check(CLI::IsMember({"train", "lookup"}))
      ->capture_default_str();
  app.add_option("--server-pid", flags.server_pid,
                 "lookup: the server's pid, to report its resident memory");
  app.add_option("--hot-keys", flags.hot_keys,
                 "lookup: draw the hot keys from keys 0..N-1 (default: all)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  const absl::Status status = varscope::bench::Main(flags);
  if (!status.ok()) {
    std::fprintf(stderr, "varscope_embedding_bench: %s\n",
                 status.ToString().c_str());
    return 1;
  }
  return 0;
}
