// varscope_durability_bench: the durability figures of the README.
//
//   varscope_durability_bench [--gib 2] [--runs 3] [--pushes 128]
//                             [--threads 4] [--dir DIR]
//
// Each figure is the median of --runs runs, measured against real varscoped
// processes on fresh data directories under --dir (default $TMPDIR or /tmp):
//   1. Resident memory (VmRSS) of a server holding --gib GiB of float32
//      variables (32 MiB each, every byte written), after the writes and
//      after a restart, against 1.15 x bytes + 64 MiB.
//   2. Restart time of that store (process start to serving, every variable
//      loaded and checked) against the time to read its files in the same
//      run. The page cache cannot be dropped in a container: before each
//      timing every file of the store is evicted from it with
//      posix_fadvise(POSIX_FADV_DONTNEED), so both read from the device.
//   3. Push throughput of 4 MiB assigns (--threads clients, --pushes in
//      all) in each durability mode, against RocksDB's own Put of 4 MiB
//      values (same column family options, same threads) without and with
//      fsync, measured in the same run.
// Prints a Markdown table.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "rocksdb/db.h"
#include "server/storage/storage.h"

namespace varscope::bench {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMiB = int64_t{1} << 20;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "varscope_durability_bench: %s\n", message.c_str());
  std::exit(1);
}

void Check(const absl::Status& status, const std::string& what) {
  if (!status.ok()) Die(absl::StrCat(what, ": ", status.ToString()));
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// A varscoped process; its stdout's first line says where it serves.
class Server {
 public:
  Server(const std::string& data_dir, const std::string& durability) {
    int fds[2];
    if (pipe(fds) != 0) Die("pipe");
    const absl::Time start = absl::Now();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      const std::string dir = absl::StrCat("--data-dir=", data_dir);
      const std::string mode = absl::StrCat("--durability=", durability);
      execl(VARSCOPED_PATH, VARSCOPED_PATH, "--listen=127.0.0.1:0", dir.c_str(),
            mode.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    std::string line;
    char c;
    while (read(fds[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    close(fds[0]);
    start_seconds_ = absl::ToDoubleSeconds(absl::Now() - start);
    const size_t at = line.find("127.0.0.1:");
    if (at == std::string::npos) Die("varscoped did not start: " + line);
    address_ = line.substr(at, line.find(' ', at) - at);
  }

  ~Server() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  const std::string& address() const { return address_; }
  // Seconds from fork to "serving on".
  double start_seconds() const { return start_seconds_; }

  // VmRSS in bytes.
  int64_t ResidentBytes() const {
    std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
    std::string line;
    while (std::getline(status, line)) {
      int64_t kib = 0;
      if (line.rfind("VmRSS:", 0) == 0 &&
          absl::SimpleAtoi(
              absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)),
              &kib)) {
        return kib * 1024;
      }
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
  std::string address_;
  double start_seconds_ = 0;
};

std::unique_ptr<Client> Connect(const std::string& address) {
  ClientOptions options;
  options.timeout = absl::Minutes(5);
  options.stream_threshold_bytes = 256 * kMiB;  // 32 MiB variables: unary
  return Client::Connect(address, options);
}

v1::GetVariableRequest Float32(const std::string& name, int64_t rows) {
  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::AUTO_REUSE);
  request.set_dtype(v1::DT_FLOAT);
  request.mutable_shape()->add_dims(rows);
  request.mutable_shape()->add_dims(1024);
  request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  return request;
}

// A float32 [rows, 1024] tensor of non-zero values derived from `seed`.
Tensor Values(int64_t rows, int64_t seed) {
  std::vector<float> values(static_cast<size_t>(rows * 1024));
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<float>((i * 2654435761u + seed) % 1000003) + 1;
  }
  return Tensor::FromVector<float>(v1::DT_FLOAT, {rows, 1024}, values);
}

// Evicts every file of `dir` from the page cache; returns their bytes.
int64_t Evict(const std::string& dir) {
  int64_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const int fd = open(entry.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    bytes += static_cast<int64_t>(entry.file_size());
  }
  return bytes;
}

// Seconds to read every file of `dir`.
double ReadAll(const std::string& dir) {
  std::vector<char> buffer(8 * kMiB);
  const absl::Time start = absl::Now();
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const int fd = open(entry.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    while (read(fd, buffer.data(), buffer.size()) > 0) {
    }
    close(fd);
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

struct StoreRun {
  double variable_bytes = 0;
  double rss_after_writes = 0;
  double rss_after_restart = 0;
  double store_bytes = 0;
  double read_seconds = 0;
  double restart_seconds = 0;
};

StoreRun MeasureStore(const std::string& dir, int64_t gib) {
  StoreRun run;
  constexpr int64_t kRows = 8192;  // 32 MiB per variable
  const int64_t count = gib * 1024 / 32;
  {
    Server server(dir, "wal");
    std::unique_ptr<Client> client = Connect(server.address());
    for (int64_t i = 0; i < count; ++i) {
      const std::string name = absl::StrCat("store/v", i);
      Check(client->GetVariable(Float32(name, kRows)).status(), name);
      Check(client->Assign(name, Values(kRows, i)).status(), name);
    }
    absl::StatusOr<v1::ServerInfo> info = client->GetServerInfo();
    Check(info.status(), "GetServerInfo");
    run.variable_bytes = static_cast<double>(info->total_bytes());
    absl::SleepFor(absl::Seconds(1));  // background flushes settle
    run.rss_after_writes = static_cast<double>(server.ResidentBytes());
  }
  run.store_bytes = static_cast<double>(Evict(dir));
  run.read_seconds = ReadAll(dir);
  Evict(dir);
  Server server(dir, "wal");
  run.restart_seconds = server.start_seconds();
  run.rss_after_restart = static_cast<double>(server.ResidentBytes());
  absl::StatusOr<v1::ServerInfo> info =
      Connect(server.address())->GetServerInfo();
  Check(info.status(), "GetServerInfo");
  if (static_cast<double>(info->total_bytes()) != run.variable_bytes) {
    Die("the restarted server does not hold every variable");
  }
  return run;
}

// Bytes per second of `threads` threads calling `push(thread, i)` for
// `pushes` pushes of 4 MiB in all.
double Throughput(int threads, int pushes,
                  const std::function<void(int, int)>& push) {
  const absl::Time start = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = t; i < pushes; i += threads) push(t, i);
    });
  }
  for (std::thread& w : workers) w.join();
  return static_cast<double>(pushes) * 4 * kMiB /
         absl::ToDoubleSeconds(absl::Now() - start);
}

double RocksDbPuts(const std::string& dir, bool sync, int threads, int pushes) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.IncreaseParallelism(2);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(
      options, dir, server::Storage::Families(), &handles, &raw);
  if (!s.ok()) Die(s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  const std::string value = Values(1024, 7).bytes();
  rocksdb::WriteOptions write;
  write.sync = sync;
  const double speed = Throughput(threads, pushes, [&](int t, int i) {
    const rocksdb::Status put =
        db->Put(write, handles[2], absl::StrCat("v", t), value);
    if (!put.ok()) Die(put.ToString());
  });
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  return speed;
}

double VarscopePushes(const std::string& dir, const std::string& durability,
                      int threads, int pushes) {
  Server server(dir, durability);
  std::unique_ptr<Client> client = Connect(server.address());
  std::vector<Tensor> values;
  for (int t = 0; t < threads; ++t) {
    const std::string name = absl::StrCat("push/v", t);
    Check(client->GetVariable(Float32(name, 1024)).status(), name);
    values.push_back(Values(1024, t));
  }
  return Throughput(threads, pushes, [&](int t, int i) {
    Check(client->Assign(absl::StrCat("push/v", t), values[t]).status(),
          "push");
  });
}

std::string Fresh(const std::string& root, const std::string& name) {
  const std::string dir = absl::StrCat(root, "/", name);
  fs::remove_all(dir);
  return dir;
}

int Main(int argc, char** argv) {
  int64_t gib = 2;
  int runs = 3;
  int pushes = 128;
  int threads = 4;
  const char* tmp = std::getenv("TMPDIR");
  std::string root = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  CLI::App app{"varscope_durability_bench: memory, restart and push figures"};
  app.add_option("--gib", gib, "GiB of variables for memory and restart")
      ->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "runs per figure (medians)")
      ->check(CLI::PositiveNumber);
  app.add_option("--pushes", pushes, "4 MiB pushes per throughput run")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "concurrent pushers")
      ->check(CLI::PositiveNumber);
  app.add_option("--dir", root, "where the data directories go");
  CLI11_PARSE(app, argc, argv);
  root = absl::StrCat(root, "/varscope-durability-bench-", getpid());
  fs::create_directories(root);

  std::vector<StoreRun> store_runs;
  std::vector<double> raw, raw_sync;
  std::map<std::string, std::vector<double>> modes;
  const std::vector<std::string> durabilities = {"wal", "sync",
                                                 "interval=200ms"};
  for (int r = 0; r < runs; ++r) {
    std::fprintf(stderr, "run %d of %d\n", r + 1, runs);
    store_runs.push_back(MeasureStore(Fresh(root, "store"), gib));
    raw.push_back(RocksDbPuts(Fresh(root, "raw"), false, threads, pushes));
    raw_sync.push_back(
        RocksDbPuts(Fresh(root, "raw-sync"), true, threads, pushes));
    for (const std::string& d : durabilities) {
      modes[d].push_back(
          VarscopePushes(Fresh(root, "push"), d, threads, pushes));
    }
  }
  fs::remove_all(root);

  auto median = [&](double StoreRun::*field) {
    std::vector<double> v;
    for (const StoreRun& s : store_runs) v.push_back(s.*field);
    return Median(v);
  };
  const double bytes = median(&StoreRun::variable_bytes);
  const double limit = 1.15 * bytes + 64.0 * kMiB;
  const double mib = static_cast<double>(kMiB);
  std::printf("Medians of %d runs; %lld GiB of variables; %d pushers.\n\n",
              runs, static_cast<long long>(gib), threads);
  std::printf("| figure | measured | target |\n|---|---|---|\n");
  for (auto [what, field] :
       {std::pair{"RSS holding the variables, after the writes",
                  &StoreRun::rss_after_writes},
        std::pair{"RSS holding the variables, after a restart",
                  &StoreRun::rss_after_restart}}) {
    const double rss = median(field);
    std::printf(
        "| %s | %.0f MiB = %.3f x bytes + %.0f MiB | <= %.0f MiB "
        "(1.15 x + 64 MiB) |\n",
        what, rss / mib, rss / bytes, (rss - bytes) / mib, limit / mib);
  }
  const double read = median(&StoreRun::read_seconds);
  const double restart = median(&StoreRun::restart_seconds);
  std::printf(
      "| restart (%.0f MiB store, files evicted) | %.2f s = %.2f x "
      "reading its files (%.2f s, %.0f MiB/s) | <= 2 x |\n",
      median(&StoreRun::store_bytes) / mib, restart, restart / read, read,
      median(&StoreRun::store_bytes) / mib / read);
  const double raw_speed = Median(raw);
  const double raw_sync_speed = Median(raw_sync);
  std::printf(
      "| RocksDB Put of 4 MiB values | %.0f MiB/s (fsync: %.0f MiB/s) "
      "| baseline |\n",
      raw_speed / mib, raw_sync_speed / mib);
  for (const std::string& d : durabilities) {
    const double speed = Median(modes[d]);
    const bool sync = d == "sync";
    std::printf(
        "| push 4 MiB, --durability=%s | %.0f MiB/s = %.2f x RocksDB%s "
        "| |\n",
        d.c_str(), speed / mib, speed / (sync ? raw_sync_speed : raw_speed),
        sync ? " with fsync" : "");
  }
  return 0;
}

}  // namespace
}  // namespace varscope::bench

int main(int argc, char** argv) { return varscope::bench::Main(argc, argv); }
