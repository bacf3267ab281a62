// End-to-end with a real varscoped process: --memory-budget bounds the
// server's resident memory (VmRSS), not only the bytes the tables count,
// while an embedding table three times the budget goes in, is read back
// (rows cold on disk and hot in memory) and survives a restart.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::varscope::testing::ServerProcess;
using ::varscope::testing::TempDir;

constexpr int64_t kBudget = 32 << 20;
constexpr int64_t kDim = 16;
// The table's values alone are three times the budget.
constexpr int64_t kKeys = 3 * kBudget / (kDim * 4);
constexpr int64_t kBatch = 1 << 16;
// Memory the server may take besides the budget's 115% and what it held
// before the table: RocksDB's memtables (two of 16 MiB), block cache,
// table readers and compactions, and the buffers of calls of 65,536 rows
// (90-100 MiB together, measured). Generous, so that a busy machine cannot
// fail the test; the first design (one heap allocation per row, 64 MiB
// memtables) peaked 45-70 MiB above the bound.
constexpr int64_t kFixedOverhead = 160 << 20;

// A size in /proc/PID/status (VmRSS: resident now, VmHWM: the most ever
// resident) in bytes.
int64_t ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  int64_t kib = 0;
  while (status >> key) {
    if (key == field && status >> kib) return kib << 10;
  }
  return 0;
}

// The value of row `key` (exact in float32 for these keys).
float ValueOf(int64_t key, int64_t j) {
  return static_cast<float>(key % 100'000) + static_cast<float>(j) / 16;
}

// Rows first..first+n-1.
std::pair<Tensor, Tensor> Rows(int64_t first, int64_t n) {
  std::vector<int64_t> keys(static_cast<size_t>(n));
  std::iota(keys.begin(), keys.end(), first);
  std::vector<float> values;
  values.reserve(static_cast<size_t>(n * kDim));
  for (int64_t key : keys) {
    for (int64_t j = 0; j < kDim; ++j) values.push_back(ValueOf(key, j));
  }
  return {Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, keys),
          Tensor::FromVector<float>(v1::DT_FLOAT, {n, kDim}, values)};
}

std::vector<std::string> Flags() {
  return {absl::StrCat("--memory-budget=", kBudget)};
}

class MemoryBudgetTest : public ::testing::Test {
 protected:
  void Start() {
    VS_ASSERT_OK_AND_ASSIGN(server_,
                            ServerProcess::Start(dir_.path(), Flags()));
    client_ = Client::Connect(server_->address());
    v1::GetEmbeddingVariableRequest request;
    request.set_name("e");
    request.set_mode(v1::AUTO_REUSE);
    request.set_embedding_dim(kDim);
    VS_ASSERT_OK(client_->GetEmbeddingVariable(request).status());
  }

  int64_t Rss() { return ProcStatus(server_->process().pid(), "VmRSS:"); }
  int64_t PeakRss() { return ProcStatus(server_->process().pid(), "VmHWM:"); }

  // Looks up rows first..first+n-1 and checks their values.
  void ReadBack(int64_t first, int64_t n) {
    const Tensor keys = Rows(first, n).first;
    absl::StatusOr<Tensor> rows =
        client_->EmbeddingLookup("e", keys, std::nullopt, /*read_only=*/true);
    ASSERT_TRUE(rows.ok()) << rows.status();
    auto flat = rows->flat<float>();
    int wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < kDim; ++j) {
        wrong += flat[i * kDim + j] != ValueOf(first + i, j);
      }
    }
    EXPECT_EQ(wrong, 0) << "rows " << first << ".." << first + n - 1;
  }

  // Reads every row back, in memory or not.
  void ReadAll() {
    for (int64_t first = 0; first < kKeys; first += kBatch) {
      ReadBack(first, std::min(kBatch, kKeys - first));
    }
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<Client> client_;
};

TEST_F(MemoryBudgetTest, HoldsTheResidentMemoryOfATableThreeTimesTheBudget) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const int64_t before = Rss();
  ASSERT_GT(before, 0);
  const int64_t bound = before + kBudget * 115 / 100 + kFixedOverhead;
  for (int64_t first = 0; first < kKeys; first += kBatch) {
    const auto [keys, values] = Rows(first, std::min(kBatch, kKeys - first));
    VS_ASSERT_OK(client_->EmbeddingImport("e", keys, values).status());
  }
  VS_ASSERT_OK_AND_ASSIGN(v1::EmbeddingStats stats,
                          client_->EmbeddingStat("e"));
  EXPECT_EQ(stats.size(), kKeys);
  EXPECT_GT(stats.disk_keys(), kKeys / 2);
  EXPECT_LE(PeakRss(), bound) << "RSS before the table: " << before;

  // Cold rows read through; the last ones again, now in memory.
  ASSERT_NO_FATAL_FAILURE(ReadAll());
  ASSERT_NO_FATAL_FAILURE(ReadBack(kKeys - kBatch, kBatch));
  EXPECT_LE(PeakRss(), bound) << "RSS before the table: " << before;

  server_->process().Kill(SIGTERM);
  const int status = server_->process().Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ASSERT_NO_FATAL_FAILURE(Start());
  VS_ASSERT_OK_AND_ASSIGN(stats, client_->EmbeddingStat("e"));
  EXPECT_EQ(stats.size(), kKeys);
  ASSERT_NO_FATAL_FAILURE(ReadAll());
  EXPECT_LE(PeakRss(), bound) << "RSS before the table: " << before;
}

}  // namespace
}  // namespace varscope
