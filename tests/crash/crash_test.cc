// The crash harness: a real varscoped process under writer processes
// (crash_writer.cc) is killed with SIGKILL at random moments and restarted on
// the same data directory, again and again. After each restart, with the
// writers paused, every variable is checked against what the writers logged:
//   - not torn: every element of a whole-tensor write is the same, every
//     scattered row is one write's;
//   - batches all or nothing: both variables of a batch at the same step;
//   - increments exactly once: the value agrees with the version; each row
//     of a sparse optimizer step's variable agrees with its slot's row, and
//     the slot's rows add up to the steps the version counts;
//   - one moment's state: a pair written x then y is never seen with y
//     ahead of x;
//   - versions never go back across restarts, and nothing that never began
//     is there;
//   - wal, sync: every acknowledged write is there, each exactly once (the
//     state is exactly the one the logged writes leave: values agree with
//     versions, created names are 1..n);
//   - interval=D: a write acknowledged more than D and a slack before the
//     next kill is there, then and after every later restart (writes that
//     carry their number: assign, pair, scatter, create). Writes after the
//     snapshot are lost for good and the writers go on, so only increments
//     keep value = version - 1 there. The writers' variables are made
//     durable before the first kill, and every other round outlasts the
//     window so that recent snapshots are checked.
//
// CI runs 50 kills in all. Soak: VARSCOPE_CRASH_KILLS=N runs N kills per
// durability mode; VARSCOPE_CRASH_SEED=S replays a run's random delays.
#include <signal.h>
#include <time.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "absl/algorithm/container.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/crash/crash_embedding.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::varscope::crash::kEmbedDim;
using ::varscope::crash::kEmbedFilterFreq;
using ::varscope::crash::kEmbedTouched;
using ::varscope::crash::kLookupKeys;
using ::varscope::crash::kUpdateKeys;
using ::varscope::crash::LookupKey;
using ::varscope::crash::LookupRow;
using ::varscope::crash::UpdateKey;
using ::varscope::crash::UpdateRow;
using ::varscope::testing::ChildProcess;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::TempDir;

constexpr int kWriters = 2;
constexpr int64_t kRows = 64;
// The sparse writer's variable (see crash_writer.cc).
constexpr int64_t kSparseRows = 256;
constexpr int64_t kSparseTouched = 4;
const char* const kKinds[] = {"add",     "assign", "batch",  "pair",
                              "scatter", "create", "sparse", "embed"};

int64_t MonotonicNanos() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

// What `steps` sparse Adagrad steps (gradient -1, learning rate 1, initial
// accumulator 1) make of a value of 0: the server's rule, in double, stored
// as float after each step.
float AdagradSteps(int64_t steps) {
  float accumulator = 1, value = 0;
  for (int64_t i = 0; i < steps; ++i) {
    const double sum = static_cast<double>(accumulator) + 1;
    accumulator = static_cast<float>(sum);
    value = static_cast<float>(static_cast<double>(value) +
                               1 / std::sqrt(static_cast<double>(accumulator)));
  }
  return value;
}

// How many of writes 1..n touch each of `rows` rows, write k touching
// row(k, j) for j = 0..touched-1.
std::vector<int64_t> Touches(int64_t (*row)(int64_t, int64_t), int64_t rows,
                             int64_t touched, int64_t n) {
  std::vector<int64_t> count(static_cast<size_t>(rows), 0);
  for (int64_t k = 1; k <= n; ++k) {
    for (int64_t j = 0; j < touched; ++j) {
      ++count[static_cast<size_t>(row(k, j))];
    }
  }
  return count;
}

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) ? parsed
                                                              : fallback;
}

// What one writer's log says about one kind of write.
struct KindLog {
  int64_t begun = 0;
  int64_t acked = 0;
  std::vector<std::pair<int64_t, int64_t>> acks;  // (write, time)
  // interval mode: the last write that had to survive the kill after it
  // (and so every later one).
  int64_t kept = 0;
  // The last write begun before the last restart (0 before the first).
  int64_t begun_before_restart = 0;
  // interval mode: writes of earlier rounds that their kill could lose
  // (kept + 1 .. begun of each round); they may stay lost.
  std::vector<std::pair<int64_t, int64_t>> maybe_lost;

  // The last write acknowledged in [from, to]; 0 if none.
  int64_t AckedBetween(int64_t from, int64_t to) const {
    int64_t n = 0;
    for (const auto& [write, at] : acks) {
      if (at >= from && at <= to) n = write;
    }
    return n;
  }

  // When write `n` was acknowledged; nullopt if it was not.
  std::optional<int64_t> AckTime(int64_t n) const {
    for (const auto& [write, at] : acks) {
      if (write == n) return at;
    }
    return std::nullopt;
  }
};

// A writer process and what its log said so far.
struct WriterState {
  std::unique_ptr<ChildProcess> process;
  std::string log_path;
  size_t log_offset = 0;
  std::map<std::string, KindLog> kinds;

  // Reads the complete lines appended since the last call.
  void ReadLog() {
    std::ifstream in(log_path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(log_offset));
    std::string line;
    while (std::getline(in, line) && !in.eof()) {
      log_offset += line.size() + 1;
      const std::vector<std::string> f = absl::StrSplit(line, ' ');
      int64_t n = 0, at = 0;
      ASSERT_EQ(f.size(), 4u) << line;
      ASSERT_TRUE(absl::SimpleAtoi(f[2], &n) && absl::SimpleAtoi(f[3], &at));
      KindLog& kind = kinds[f[1]];
      if (f[0] == "B") {
        kind.begun = n;
      } else {
        kind.acked = n;
        kind.acks.emplace_back(n, at);
      }
    }
  }
};

struct HarnessOptions {
  std::string durability;
  int kills = 0;
  absl::Duration min_delay, max_delay;
  // interval mode: writes acknowledged this long before a kill must
  // survive it (the interval plus a slack for the flush and scheduling).
  // Every other round then lasts longer than the window, by up to
  // max_delay.
  absl::Duration snapshot_window = absl::ZeroDuration();
};

class CrashHarness {
 public:
  explicit CrashHarness(HarnessOptions options)
      : options_(std::move(options)),
        seed_(static_cast<uint32_t>(
            EnvInt("VARSCOPE_CRASH_SEED", std::random_device()()))),
        random_(seed_) {}

  void Run() {
    SCOPED_TRACE(absl::StrCat("durability ", options_.durability, ", seed ",
                              seed_, " (VARSCOPE_CRASH_SEED)"));
    ASSERT_NO_FATAL_FAILURE(StartServer(0));
    for (int w = 0; w < kWriters; ++w) {
      WriterState writer;
      writer.log_path = absl::StrCat(dir_.path(), "/writer-", w, ".log");
      auto process =
          ChildProcess::Start({VARSCOPE_CRASH_WRITER_PATH, server_->address(),
                               absl::StrCat(w), writer.log_path});
      ASSERT_TRUE(process.ok()) << process.status();
      writer.process = *std::move(process);
      writers_.push_back(std::move(writer));
    }
    std::uniform_int_distribution<int64_t> delay(
        absl::ToInt64Milliseconds(options_.min_delay),
        absl::ToInt64Milliseconds(options_.max_delay));
    const absl::Time start = absl::Now();
    // The writers create their variables first: once, so those must be
    // there before any kill.
    ASSERT_NO_FATAL_FAILURE(AwaitFirstWrites());
    absl::SleepFor(options_.snapshot_window);
    for (int kill = 0; kill < options_.kills; ++kill) {
      SCOPED_TRACE(absl::StrCat("kill ", kill + 1));
      absl::Duration round = absl::Milliseconds(delay(random_));
      if (kill % 2 == 1) round += options_.snapshot_window;
      absl::SleepFor(round);
      for (WriterState& w : writers_) w.process->Kill(SIGSTOP);
      const int64_t killed_at = MonotonicNanos();
      server_->process().Kill(SIGKILL);
      server_->process().Wait();
      ASSERT_NO_FATAL_FAILURE(StartServer(server_->port()));
      ASSERT_NO_FATAL_FAILURE(Check(killed_at));
      for (WriterState& w : writers_) {
        // Read while the writers were paused, since before the kill.
        for (auto& [kind, log] : w.kinds) log.begun_before_restart = log.begun;
        w.process->Kill(SIGCONT);
      }
      resumed_at_ = MonotonicNanos();
    }
    int64_t writes = 0;
    for (WriterState& w : writers_) {
      for (const auto& [kind, log] : w.kinds) writes += log.acked;
    }
    std::printf(
        "%s: %d kills in %.1f s, %lld writes acknowledged, %lld checked "
        "after the kills; the oldest state found was at least %.0f ms "
        "older than its kill\n",
        options_.durability.c_str(), options_.kills,
        absl::ToDoubleSeconds(absl::Now() - start),
        static_cast<long long>(writes), static_cast<long long>(checked_),
        static_cast<double>(oldest_state_ns_) / 1e6);
    EXPECT_GT(writes, options_.kills) << "the writers hardly wrote";
  }

 private:
  void StartServer(int port) {
    auto server = ServerProcess::Start(
        dir_.path(),
        {absl::StrCat("--durability=", options_.durability),
         "--chunk-bytes=4096"},
        port);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Waits until every writer has acknowledged a write of every kind.
  void AwaitFirstWrites() {
    const absl::Time deadline = absl::Now() + absl::Minutes(2);
    for (WriterState& writer : writers_) {
      for (;;) {
        ASSERT_NO_FATAL_FAILURE(writer.ReadLog());
        bool all = true;
        for (const char* kind : kKinds) all &= writer.kinds[kind].acked > 0;
        if (all) break;
        ASSERT_LT(absl::Now(), deadline) << "the writers did not start";
        absl::SleepFor(absl::Milliseconds(10));
      }
    }
  }

  // Reads `name`; every element must be equal. Returns (value, version), or
  // nullopt if it does not exist.
  std::optional<std::pair<int64_t, int64_t>> Uniform(Client& client,
                                                     const std::string& name) {
    absl::StatusOr<ReadResult> read = client.Read(name);
    if (absl::IsNotFound(read.status())) return std::nullopt;
    EXPECT_TRUE(read.ok()) << name << ": " << read.status();
    if (!read.ok()) return std::nullopt;
    auto flat = read->value.flat<int64_t>();
    for (int64_t v : flat) {
      EXPECT_EQ(v, flat[0]) << name << " is torn";
      if (v != flat[0]) break;
    }
    Monotonic(name, read->version);
    return std::make_pair(flat[0], read->version);
  }

  void Monotonic(const std::string& name, int64_t version) {
    int64_t& last = versions_[name];
    EXPECT_GE(version, last) << name << " went back to an older version";
    last = version;
  }

  // Checks write count `n` of a kind against its log: at least what must
  // have survived, at most what began.
  // (Without `numbered`, an interval-mode count is only bounded above.)
  void InBounds(const std::string& what, int64_t n, KindLog& log,
                int64_t killed_at, bool numbered = true) {
    ++checked_;
    int64_t must = log.acked;
    if (!exact()) {
      // Writes of this round acknowledged a window before the kill, and
      // those of earlier rounds that had to survive theirs. (A write of an
      // earlier round that its own kill could lose may be gone.)
      log.kept = std::max(
          log.kept,
          log.AckedBetween(
              resumed_at_,
              killed_at - absl::ToInt64Nanoseconds(options_.snapshot_window)));
      must = numbered ? log.kept : 0;
    }
    EXPECT_GE(n, must) << what << ": an acknowledged write was lost";
    EXPECT_LE(n, log.begun) << what << ": holds writes that never began";
    // Write n + 1, acknowledged before the kill, is missing: the state is
    // older than its acknowledgement.
    if (std::optional<int64_t> next = log.AckTime(n + 1);
        numbered && next.has_value() && *next >= resumed_at_ &&
        *next < killed_at) {
      oldest_state_ns_ = std::max(oldest_state_ns_, killed_at - *next);
    }
  }

  // Whether no acknowledged write may be lost (wal, sync).
  bool exact() const { return options_.durability.rfind("interval", 0) != 0; }

  void Check(int64_t killed_at) {
    ClientOptions options;
    options.timeout = absl::Minutes(2);
    std::unique_ptr<Client> client =
        Client::Connect(server_->address(), options);
    for (int w = 0; w < kWriters; ++w) {
      WriterState& writer = writers_[w];
      ASSERT_NO_FATAL_FAILURE(writer.ReadLog());
      const std::string p = absl::StrCat("w", w, "/");
      auto& kinds = writer.kinds;

      if (auto add = Uniform(*client, p + "add")) {
        EXPECT_EQ(add->first, add->second - 1) << p << "add: not exactly once";
        InBounds(p + "add", add->first, kinds["add"], killed_at, false);
      } else {
        InBounds(p + "add", 0, kinds["add"], killed_at);
      }
      if (auto assign = Uniform(*client, p + "assign")) {
        if (exact()) {
          EXPECT_EQ(assign->first, assign->second - 1) << p;
        }
        InBounds(p + "assign", assign->first, kinds["assign"], killed_at);
      } else {
        InBounds(p + "assign", 0, kinds["assign"], killed_at);
      }
      auto a = Uniform(*client, p + "batch/a");
      auto b = Uniform(*client, p + "batch/b");
      if (a && b) {
        EXPECT_EQ(a->first, -b->first) << p << "batch: half applied";
        EXPECT_EQ(a->second, b->second) << p << "batch: versions differ";
        EXPECT_EQ(a->first, a->second - 1) << p << "batch: not exactly once";
        InBounds(p + "batch", a->first, kinds["batch"], killed_at, false);
      } else {
        InBounds(p + "batch", 0, kinds["batch"], killed_at);
      }
      auto x = Uniform(*client, p + "pair/x");
      auto y = Uniform(*client, p + "pair/y");
      if (x && y) {
        // Pair n writes x = n, then y = n. In interval mode the last kill
        // may have lost writes of pairs begun before it, and the writer
        // went on: y ahead of x, or x more than one ahead of y, then means
        // that the pair after the older value had begun by then.
        const bool one_moment =
            x->first == y->first || x->first == y->first + 1 ||
            (!exact() && std::min(x->first, y->first) + 1 <=
                             kinds["pair"].begun_before_restart);
        EXPECT_TRUE(one_moment)
            << p << "pair: y=" << y->first << " with x=" << x->first
            << ": not one moment's state";
        if (exact()) {
          EXPECT_EQ(x->first, x->second - 1) << p << "pair/x";
          EXPECT_EQ(y->first, y->second - 1) << p << "pair/y";
        }
        InBounds(p + "pair", y->first, kinds["pair"], killed_at);
        EXPECT_LE(x->first, kinds["pair"].begun);
      } else {
        InBounds(p + "pair", 0, kinds["pair"], killed_at);
      }
      CheckRows(*client, p, kinds["scatter"], killed_at);
      CheckCreated(*client, w, kinds["create"], killed_at);
      CheckSparse(*client, p, kinds["sparse"], killed_at);
      CheckEmbedding(*client, p, kinds["embed"], killed_at);
    }
  }

  // Every row holds one write k (or 0) to it, k % 64 == r; the largest is
  // m, the last write applied. wal, sync: row r holds the last k <= m with
  // k % 64 == r, and m = version - 1.
  void CheckRows(Client& client, const std::string& p, KindLog& log,
                 int64_t killed_at) {
    absl::StatusOr<ReadResult> read = client.Read(p + "rows");
    if (absl::IsNotFound(read.status())) {
      InBounds(p + "rows", 0, log, killed_at);
      return;
    }
    ASSERT_TRUE(read.ok()) << read.status();
    Monotonic(p + "rows", read->version);
    auto flat = read->value.flat<int64_t>();
    const int64_t cols = static_cast<int64_t>(flat.size()) / kRows;
    int64_t m = 0;
    for (int64_t r = 0; r < kRows; ++r) m = std::max(m, flat[r * cols]);
    if (exact()) {
      EXPECT_EQ(m, read->version - 1) << p << "rows";
    }
    InBounds(p + "rows", m, log, killed_at);
    for (int64_t r = 0; r < kRows; ++r) {
      const int64_t k = flat[r * cols];
      for (int64_t c = 0; c < cols; ++c) {
        ASSERT_EQ(flat[r * cols + c], k) << p << "rows: row " << r << " torn";
      }
      ASSERT_TRUE(k == 0 || k % kRows == r)
          << p << "rows: row " << r << " " << k;
      if (exact()) {
        int64_t want = m - (((m - r) % kRows) + kRows) % kRows;
        if (want <= 0) want = 0;
        ASSERT_EQ(k, want) << p << "rows: row " << r << " after " << m
                           << " writes";
      }
    }
  }

  // The sparse Adagrad steps: m = version - 1 steps applied, variable and
  // slot at the same version (one batch); no row torn; each row of the
  // slot is 1 + c for the c steps that touched the row, and the variable's
  // row is what c steps make of it, computed as the server does; the c add
  // up to 4m (each step exactly once). wal, sync: c is what steps 1..m
  // give.
  void CheckSparse(Client& client, const std::string& p, KindLog& log,
                   int64_t killed_at) {
    absl::StatusOr<ReadResult> var = client.Read(p + "sparse");
    if (absl::IsNotFound(var.status())) {
      InBounds(p + "sparse", 0, log, killed_at);
      return;
    }
    ASSERT_TRUE(var.ok()) << var.status();
    Monotonic(p + "sparse", var->version);
    const int64_t m = var->version - 1;
    InBounds(p + "sparse", m, log, killed_at, false);
    absl::StatusOr<ReadResult> slot = client.Read(p + "sparse/Adagrad");
    if (m == 0 && absl::IsNotFound(slot.status())) return;
    ASSERT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(slot->version, var->version) << p << "sparse: half a step";
    auto w = var->value.flat<float>();
    auto a = slot->value.flat<float>();
    const int64_t cols = static_cast<int64_t>(w.size()) / kSparseRows;
    const std::vector<int64_t> want = Touches(
        [](int64_t n, int64_t j) { return (7 * n + 64 * j) % kSparseRows; },
        kSparseRows, kSparseTouched, m);
    int64_t total = 0;
    for (int64_t r = 0; r < kSparseRows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        ASSERT_EQ(w[r * cols + c], w[r * cols])
            << p << "sparse: row " << r << " torn";
        ASSERT_EQ(a[r * cols + c], a[r * cols])
            << p << "sparse/Adagrad: row " << r << " torn";
      }
      const int64_t touched = static_cast<int64_t>(a[r * cols]) - 1;
      ASSERT_EQ(static_cast<float>(touched + 1), a[r * cols])
          << p << "sparse/Adagrad: row " << r;
      ASSERT_EQ(w[r * cols], AdagradSteps(touched))
          << p << "sparse: row " << r << " after " << touched << " steps";
      if (exact()) {
        ASSERT_EQ(touched, want[static_cast<size_t>(r)])
            << p << "sparse: row " << r << " after " << m << " steps";
      }
      total += touched;
    }
    EXPECT_EQ(total, kSparseTouched * m) << p << "sparse: not exactly once";
  }

  // The embedding writer's rows (crash_embedding.h). An update key's row is
  // whole and is what its c = frequency - 2 steps make of 0, c at most what
  // the begun writes give; m, the last step applied (the largest last step
  // of a touched update key), is within the log's bounds; wal, sync: every
  // c is what steps 1..m give (each step exactly once); interval: at least
  // what the writes that had to survive give. A stored lookup key was
  // looked up at least twice (admission) and holds its initial row (read
  // from the twin variable, deterministic per key). No other key is there.
  void CheckEmbedding(Client& client, const std::string& p, KindLog& log,
                      int64_t killed_at) {
    absl::StatusOr<v1::EmbeddingExportResponse> rows =
        client.EmbeddingExport(p + "emb");
    ASSERT_TRUE(rows.ok()) << rows.status();
    absl::StatusOr<Tensor> keys = TensorFromProto(rows->mutable_keys());
    absl::StatusOr<Tensor> values = TensorFromProto(rows->mutable_values());
    absl::StatusOr<Tensor> freqs = TensorFromProto(rows->mutable_frequencies());
    absl::StatusOr<Tensor> steps = TensorFromProto(rows->mutable_last_steps());
    ASSERT_TRUE(keys.ok() && values.ok() && freqs.ok() && steps.ok());
    std::map<int64_t, int64_t> update_row, lookup_row;
    for (int64_t r = 0; r < kUpdateKeys; ++r) update_row[UpdateKey(r)] = r;
    for (int64_t r = 0; r < kLookupKeys; ++r) lookup_row[LookupKey(r)] = r;
    const std::vector<int64_t> looked =
        Touches(LookupRow, kLookupKeys, kEmbedTouched, log.begun);
    const std::vector<int64_t> begun =
        Touches(UpdateRow, kUpdateKeys, kEmbedTouched, log.begun);
    auto k = keys->flat<int64_t>();
    auto v = values->flat<float>();
    auto f = freqs->flat<int64_t>();
    auto s = steps->flat<int64_t>();
    std::vector<int64_t> applied(kUpdateKeys, -1);
    std::vector<int64_t> admitted;
    std::vector<float> admitted_rows;
    int64_t m = 0;
    for (size_t i = 0; i < k.size(); ++i) {
      const float* row = v.data() + i * kEmbedDim;
      EXPECT_LE(s[i], log.begun) << p << "emb: key " << k[i];
      if (auto u = update_row.find(k[i]); u != update_row.end()) {
        const int64_t r = u->second;
        const int64_t c = f[i] - kEmbedFilterFreq;
        ASSERT_GE(c, 0) << p << "emb: update key " << k[i];
        for (int64_t d = 0; d < kEmbedDim; ++d) {
          ASSERT_EQ(row[d], AdagradSteps(c))
              << p << "emb: update key " << k[i] << " after " << c << " steps";
        }
        ASSERT_LE(c, begun[r])
            << p << "emb: update key " << k[i] << ": more steps than began";
        applied[r] = c;
        if (c > 0) m = std::max(m, s[i]);
      } else if (auto l = lookup_row.find(k[i]); l != lookup_row.end()) {
        EXPECT_GE(looked[l->second], kEmbedFilterFreq)
            << p << "emb: lookup key " << k[i] << " stored before admission";
        EXPECT_GE(f[i], kEmbedFilterFreq) << p << "emb: key " << k[i];
        admitted.push_back(k[i]);
        admitted_rows.insert(admitted_rows.end(), row, row + kEmbedDim);
      } else if (k[i] % 2 == 0 && k[i] >= LookupKey(kLookupKeys) &&
                 k[i] <= LookupKey(kLookupKeys + log.begun)) {
        ADD_FAILURE() << p << "emb: key " << k[i]
                      << ", looked up once, was stored before admission";
      } else {
        ADD_FAILURE() << p << "emb: a key nobody wrote: " << k[i];
      }
    }
    InBounds(p + "embed", m, log, killed_at);
    const std::vector<int64_t> want =
        Touches(UpdateRow, kUpdateKeys, kEmbedTouched, m);
    // interval: the steps up to the last one that had to survive, but for
    // those that earlier kills could lose.
    std::vector<int64_t> kept(kUpdateKeys, 0);
    for (int64_t n = 1; n <= log.kept; ++n) {
      const bool lost = absl::c_any_of(log.maybe_lost, [n](const auto& r) {
        return n >= r.first && n <= r.second;
      });
      for (int64_t j = 0; !lost && j < kEmbedTouched; ++j) {
        ++kept[UpdateRow(n, j)];
      }
    }
    log.maybe_lost.emplace_back(log.kept + 1, log.begun);
    for (int64_t r = 0; r < kUpdateKeys; ++r) {
      ASSERT_GE(applied[r], 0)
          << p << "emb: update key " << UpdateKey(r) << " is gone";
      if (exact()) {
        ASSERT_EQ(applied[r], want[r])
            << p << "emb: update key " << UpdateKey(r) << " after " << m
            << " steps";
      } else {
        ASSERT_LE(applied[r], want[r]) << p << "emb: key " << UpdateKey(r);
        ASSERT_GE(applied[r], kept[r])
            << p << "emb: key " << UpdateKey(r)
            << ": a step that had to survive was lost";
      }
    }
    if (admitted.empty()) return;
    const int64_t n = static_cast<int64_t>(admitted.size());
    absl::StatusOr<Tensor> initial = client.EmbeddingLookup(
        p + "emb_twin",
        Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, admitted), std::nullopt,
        /*read_only=*/true);
    ASSERT_TRUE(initial.ok()) << initial.status();
    auto want_rows = initial->flat<float>();
    for (size_t i = 0; i < admitted_rows.size(); ++i) {
      ASSERT_EQ(admitted_rows[i], want_rows[i])
          << p << "emb: lookup key " << admitted[i / kEmbedDim]
          << " is not its initial row";
    }
  }

  // Created names are exactly w/made/1..m, each with its initial value.
  void CheckCreated(Client& client, int w, KindLog& log, int64_t killed_at) {
    const std::string scope = absl::StrCat("w", w, "/made");
    std::set<int64_t> made;
    v1::ListVariablesRequest request;
    request.set_scope(scope);
    request.set_recursive(true);
    VS_ASSERT_OK(
        client.ForEachPage(request, [&](v1::ListVariablesResponse& page) {
          for (const auto& entry : page.entries()) {
            int64_t n = 0;
            if (!absl::SimpleAtoi(entry.name().substr(scope.size() + 1), &n)) {
              return absl::InternalError(
                  absl::StrCat("not a created name: ", entry.name()));
            }
            made.insert(n);
            EXPECT_EQ(entry.variable().version(), 1) << entry.name();
          }
          return absl::OkStatus();
        }));
    const int64_t m = made.empty() ? 0 : *made.rbegin();
    if (exact()) {
      EXPECT_EQ(static_cast<int64_t>(made.size()), m)
          << scope << ": created names are not 1.." << m;
    }
    InBounds(scope, m, log, killed_at);
    // Values of the names not seen before (the others never change).
    std::set<int64_t>& seen = made_seen_[w];
    for (auto it = seen.upper_bound(m); it != seen.end();) it = seen.erase(it);
    for (int64_t n : made) {
      if (seen.count(n) > 0) continue;
      auto value = Uniform(client, absl::StrCat(scope, "/", n));
      ASSERT_TRUE(value.has_value()) << scope << "/" << n;
      EXPECT_EQ(value->first, n) << scope << "/" << n;
      seen.insert(n);
    }
  }

  const HarnessOptions options_;
  const uint32_t seed_;
  std::mt19937 random_;
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::vector<WriterState> writers_;
  std::map<std::string, int64_t> versions_;
  std::map<int, std::set<int64_t>> made_seen_;
  int64_t checked_ = 0;
  int64_t oldest_state_ns_ = 0;
  // When the writers went on after the last restart (0: the first round).
  int64_t resumed_at_ = 0;
};

TEST(CrashTest, WalKeepsEveryAcknowledgedWrite) {
  CrashHarness({.durability = "wal",
                .kills = EnvInt("VARSCOPE_CRASH_KILLS", 20),
                .min_delay = absl::Milliseconds(30),
                .max_delay = absl::Milliseconds(600)})
      .Run();
}

TEST(CrashTest, SyncKeepsEveryAcknowledgedWrite) {
  CrashHarness({.durability = "sync",
                .kills = EnvInt("VARSCOPE_CRASH_KILLS", 15),
                .min_delay = absl::Milliseconds(30),
                .max_delay = absl::Milliseconds(600)})
      .Run();
}

// Rounds longer than the snapshot window check that recent snapshots
// survive; shorter ones that a kill mid-flush leaves a whole snapshot.
TEST(CrashTest, IntervalKeepsOneRecentSnapshot) {
  CrashHarness({.durability = "interval=100ms",
                .kills = EnvInt("VARSCOPE_CRASH_KILLS", 15),
                .min_delay = absl::Milliseconds(30),
                .max_delay = absl::Milliseconds(600),
                .snapshot_window = absl::Milliseconds(100 + 1400)})
      .Run();
}

}  // namespace
}  // namespace varscope
