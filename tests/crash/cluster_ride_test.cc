// Workers ride through shard failures: a cluster of 3 real varscoped
// processes under 4 worker processes (varscope_test_worker train, default
// client options) whose every step is one BatchUpdate spanning the 3 shards.
// One shard is killed with SIGKILL and restarted on its directory and port,
// another is stopped with SIGSTOP and continued. The workers finish with no
// error, and every variable counts each step exactly once. The time each
// fault cost the workers is printed, not asserted (it depends on the
// machine). Then synchronous replicas (varscope_test_worker sync) through a
// kill -9 of a shard without the global step: every shard applies every
// step once.
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::varscope::testing::ChildProcess;
using ::varscope::testing::PollUntil;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestShardFlags;

constexpr int kShards = 3;
constexpr int kWorkers = 4;
// Bound of every wait for progress: generous, as the machine may be slow.
constexpr absl::Duration kPatience = absl::Minutes(2);

// A varscope_test_worker process training, and the steps it reported.
class Worker {
 public:
  explicit Worker(std::vector<std::string> argv) {
    auto process = ChildProcess::Start(argv, /*capture_stderr=*/true);
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return;
    process_ = *std::move(process);
    reader_ = std::thread([this] { ReadReports(); });
  }
  ~Worker() { Stop(); }

  // Asks it to finish its step and stop; returns its steps. Fails the test
  // if it reported anything but steps or did not exit cleanly.
  int64_t Stop() {
    if (!reader_.joinable()) return done_;
    process_->Kill(SIGTERM);
    reader_.join();
    const int status = process_->Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "wait status " << status;
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(other_lines_, "") << "the worker reported errors";
    EXPECT_EQ(done_, static_cast<int64_t>(step_times_.size()));
    return done_;
  }

  int64_t steps() {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(step_times_.size());
  }
  // When it completed its first step after `t`, if it did.
  std::optional<absl::Time> FirstStepAfter(absl::Time t) {
    absl::MutexLock lock(&mu_);
    for (absl::Time step : step_times_) {
      if (step > t) return step;
    }
    return std::nullopt;
  }
  // When it completed its last step before `t`, or InfinitePast.
  absl::Time LastStepBefore(absl::Time t) {
    absl::MutexLock lock(&mu_);
    absl::Time last = absl::InfinitePast();
    for (absl::Time step : step_times_) {
      if (step < t) last = step;
    }
    return last;
  }

 private:
  void ReadReports() {
    for (;;) {
      absl::StatusOr<std::string> line = process_->ReadLine();
      if (!line.ok()) return;
      std::vector<std::string> words = absl::StrSplit(*line, ' ');
      int64_t a = 0, b = 0;
      absl::MutexLock lock(&mu_);
      if (words.size() == 3 && words[0] == "step" &&
          absl::SimpleAtoi(words[2], &b)) {
        step_times_.push_back(absl::FromUnixMicros(b));
      } else if (words.size() == 2 && words[0] == "done" &&
                 absl::SimpleAtoi(words[1], &a)) {
        done_ = a;
      } else {
        absl::StrAppend(&other_lines_, *line, "\n");
      }
    }
  }

  std::unique_ptr<ChildProcess> process_;
  std::thread reader_;
  absl::Mutex mu_;
  std::vector<absl::Time> step_times_ ABSL_GUARDED_BY(mu_);
  int64_t done_ ABSL_GUARDED_BY(mu_) = -1;
  std::string other_lines_ ABSL_GUARDED_BY(mu_);
};

// Prints what the fault from `begin` (the kill, stop or re-shard) to `end`
// (the shard serving again, the re-shard done) cost each worker: from its
// last step before the fault to its first after `end`, and the part of that
// after `end`.
void Report(absl::string_view fault, absl::Time begin, absl::Time end,
            const std::vector<std::unique_ptr<Worker>>& workers) {
  std::printf("%s: outage %s\n", std::string(fault).c_str(),
              absl::FormatDuration(end - begin).c_str());
  for (size_t i = 0; i < workers.size(); ++i) {
    const absl::Time resumed = *workers[i]->FirstStepAfter(end);
    std::printf(
        "  worker %zu: no step for %s, of which %s after it ended\n", i,
        absl::FormatDuration(resumed - workers[i]->LastStepBefore(begin))
            .c_str(),
        absl::FormatDuration(resumed - end).c_str());
  }
  std::fflush(stdout);
}

// Waits until every worker of `workers` has completed a step after `t`.
bool StepsAfter(absl::Time t,
                const std::vector<std::unique_ptr<Worker>>& workers) {
  return PollUntil(
      [&] {
        for (auto& worker : workers) {
          if (!worker->FirstStepAfter(t).has_value()) return false;
        }
        return true;
      },
      kPatience);
}

class ClusterRideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> addresses;
    for (int i = 0; i < kShards; ++i) {
      ASSERT_NO_FATAL_FAILURE(StartShard(i, 0));
      addresses.push_back(shards_[i]->address());
    }
    address_ = absl::StrJoin(addresses, ",");
    client_ = Client::Connect(address_);
    // An int64 counter and a float64 vector on every shard.
    for (const char* kind : {"count", "float"}) {
      std::vector<bool> placed(kShards, false);
      for (int k = 0; absl::c_count(placed, false) > 0; ++k) {
        const std::string name = absl::StrCat("ride/", kind, k);
        const int shard = ShardOf(name, kShards);
        if (placed[shard]) continue;
        placed[shard] = true;
        names_.push_back(name);
        v1::GetVariableRequest request;
        request.set_name(name);
        request.set_mode(v1::CREATE);
        if (kind == std::string("float")) {
          request.set_dtype(v1::DT_DOUBLE);
          request.mutable_shape()->add_dims(4);
        } else {
          request.set_dtype(v1::DT_INT64);
          request.mutable_shape();
        }
        request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
        VS_ASSERT_OK(client_->GetVariable(request));
      }
    }
    for (const std::string& name : names_) {
      VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read(name));
      initial_versions_.push_back(read.version);
    }
  }

  // Starts shard `i` on its directory, listening on `port` (0: any).
  void StartShard(int i, int port) {
    auto shard =
        ServerProcess::Start(dirs_[i].path(), TestShardFlags(i, kShards), port);
    ASSERT_TRUE(shard.ok()) << shard.status();
    shards_[i] = *std::move(shard);
  }

  void StartWorkers() {
    std::vector<std::string> argv = {testing::TestWorkerPath(), "train",
                                     address_};
    argv.insert(argv.end(), names_.begin(), names_.end());
    for (int i = 0; i < kWorkers; ++i) {
      workers_.push_back(std::make_unique<Worker>(argv));
    }
  }

  // Waits until every worker has completed a step after `t`.
  void WaitForStepsAfter(absl::Time t) {
    ASSERT_TRUE(StepsAfter(t, workers_))
        << "the workers stopped making progress";
  }

  TempDir dirs_[kShards];
  std::unique_ptr<ServerProcess> shards_[kShards];
  std::string address_;
  std::unique_ptr<Client> client_;
  std::vector<std::string> names_;
  std::vector<int64_t> initial_versions_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

TEST_F(ClusterRideTest, WorkersTrainThroughAKilledShardAndAHungOne) {
  StartWorkers();
  ASSERT_TRUE(PollUntil(
      [&] {
        for (auto& worker : workers_) {
          if (worker->steps() < 20) return false;
        }
        return true;
      },
      kPatience))
      << "the workers did not start training";

  // kill -9 shard 1, down for a second (as a restart takes), then back on
  // its directory and port.
  const absl::Time killed = absl::Now();
  const int port = shards_[1]->port();
  shards_[1]->process().Kill(SIGKILL);
  shards_[1]->process().Wait();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_NO_FATAL_FAILURE(StartShard(1, port));
  const absl::Time restarted = absl::Now();
  ASSERT_NO_FATAL_FAILURE(WaitForStepsAfter(restarted));
  Report("kill -9 and restart of shard 1", killed, restarted, workers_);

  // SIGSTOP shard 2 for 3 seconds: calls wait for it (within the timeout of
  // each attempt, 30 s) and go on when it continues.
  const absl::Time stopped = absl::Now();
  shards_[2]->process().Stop();
  absl::SleepFor(absl::Seconds(3));
  shards_[2]->process().Kill(SIGCONT);
  const absl::Time continued = absl::Now();
  ASSERT_NO_FATAL_FAILURE(WaitForStepsAfter(continued));
  Report("SIGSTOP and SIGCONT of shard 2", stopped, continued, workers_);

  int64_t steps = 0;
  for (auto& worker : workers_) steps += worker->Stop();
  std::printf("%lld steps in all\n", static_cast<long long>(steps));
  for (size_t i = 0; i < names_.size(); ++i) {
    VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read(names_[i]));
    SCOPED_TRACE(names_[i]);
    EXPECT_EQ(read.version, initial_versions_[i] + steps);
    if (read.value.dtype() == v1::DT_INT64) {
      EXPECT_EQ(read.value.flat<int64_t>()[0], steps);
    } else {
      for (double x : read.value.flat<double>()) {
        EXPECT_EQ(x, static_cast<double>(steps));
      }
    }
  }
}

// Synchronous replicas through a kill -9 of a shard without the global
// step (shard 0; the global step is on shard 1): 4 worker processes, all 4
// aggregated, equal gradients (so a step's mean is 1 whoever contributed).
// The killed shard forgets the contributions of its current step; the
// global step waits for it, the workers' waits time out and they contribute
// again. At the end, every shard applied every step once: each variable is
// minus the global step.
TEST_F(ClusterRideTest, SynchronousWorkersTrainThroughAKilledShard) {
  ASSERT_EQ(ShardOf("global_step", kShards), 1);
  v1::GetVariableRequest create;
  create.set_name("global_step");
  create.set_mode(v1::CREATE);
  create.set_dtype(v1::DT_INT64);
  create.mutable_shape();
  create.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  VS_ASSERT_OK(client_->GetVariable(create));
  std::vector<std::string> floats;
  for (const std::string& name : names_) {
    if (absl::StrContains(name, "float")) floats.push_back(name);
  }
  constexpr int kLast = 30;
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int i = 0; i < kWorkers; ++i) {
    std::vector<std::string> argv = {
        testing::TestWorkerPath(), "sync", address_, absl::StrCat(kLast), "0",
        absl::StrCat(kWorkers),    "5"};
    argv.insert(argv.end(), floats.begin(), floats.end());
    VS_ASSERT_OK_AND_ASSIGN(workers.emplace_back(),
                            ChildProcess::Start(argv, /*capture_stderr=*/true));
  }
  auto global_step = [&]() -> int64_t {
    absl::StatusOr<ReadResult> read = client_->Read("global_step");
    return read.ok() ? read->value.flat<int64_t>()[0] : -1;
  };
  ASSERT_TRUE(PollUntil([&] { return global_step() >= 5; }, kPatience))
      << "the workers did not start training";
  const int port = shards_[0]->port();
  shards_[0]->process().Kill(SIGKILL);
  shards_[0]->process().Wait();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_NO_FATAL_FAILURE(StartShard(0, port));

  int contributions = 0;
  for (auto& worker : workers) {
    const std::vector<std::string> lines = worker->ReadLines();
    EXPECT_EQ(worker->Wait(), 0) << absl::StrJoin(lines, "\n");
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), "done") << absl::StrJoin(lines, "\n");
    contributions += static_cast<int>(lines.size()) - 1;
  }
  std::printf("%d contributions for %d steps\n", contributions, kLast);
  EXPECT_EQ(global_step(), kLast);
  for (const std::string& name : floats) {
    VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read(name));
    for (double x : read.value.flat<double>()) {
      EXPECT_EQ(x, -kLast) << name;
    }
  }
}

// Training through a re-shard: 4 worker processes of a 2-shard cluster
// (varscope_test_worker train, default client options, every step one
// BatchUpdate spanning the shards) keep training while `varscope reshard`
// moves the cluster to 3 shards, a new standalone process added. Their
// changes wait out the re-shard's pause, then they follow to the new list;
// they finish with no error and every variable counts each step once,
// wherever it lives now.
TEST(ClusterReshardTest, WorkersTrainThroughAReshardFromTwoShardsToThree) {
  TempDir dirs[3];
  std::unique_ptr<ServerProcess> shards[3];
  for (int i = 0; i < 3; ++i) {
    auto shard = ServerProcess::Start(
        dirs[i].path(),
        i < 2 ? TestShardFlags(i, 2) : std::vector<std::string>());
    ASSERT_TRUE(shard.ok()) << shard.status();
    shards[i] = *std::move(shard);
  }
  const std::string from =
      absl::StrCat(shards[0]->address(), ",", shards[1]->address());
  const std::string to = absl::StrCat(from, ",", shards[2]->address());
  // Int64 counters, two on each shard of the new list.
  std::vector<std::string> names;
  std::vector<int> placed(3, 0);
  for (int k = 0; names.size() < 6; ++k) {
    const std::string name = absl::StrCat("reshard/count", k);
    if (placed[ShardOf(name, 3)]++ < 2) names.push_back(name);
  }
  {
    std::unique_ptr<Client> client = Client::Connect(from);
    for (const std::string& name : names) {
      v1::GetVariableRequest request;
      request.set_name(name);
      request.set_mode(v1::CREATE);
      request.set_dtype(v1::DT_INT64);
      request.mutable_shape();
      request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
      VS_ASSERT_OK(client->GetVariable(request));
    }
  }
  std::vector<std::string> argv = {testing::TestWorkerPath(), "train", from};
  argv.insert(argv.end(), names.begin(), names.end());
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(std::make_unique<Worker>(argv));
  }
  ASSERT_TRUE(StepsAfter(absl::Now(), workers))
      << "the workers did not start training";

  const absl::Time start = absl::Now();
  const cli::testing::CliResult reshard =
      cli::testing::RunCli({"reshard", "--from", from, "--to", to});
  const absl::Time end = absl::Now();
  ASSERT_EQ(reshard.code, 0) << reshard.err;
  std::printf("%s", reshard.out.c_str());
  ASSERT_TRUE(StepsAfter(end, workers))
      << "the workers stopped making progress";
  Report("re-shard from 2 to 3 shards", start, end, workers);

  int64_t steps = 0;
  for (auto& worker : workers) steps += worker->Stop();
  std::printf("%lld steps in all\n", static_cast<long long>(steps));
  std::unique_ptr<Client> client = Client::Connect(to);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read(name));
    EXPECT_EQ(read.value.flat<int64_t>()[0], steps);
    EXPECT_EQ(read.version, 1 + steps);
    // On its shard under the new count, and only there.
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(Client::Connect(shards[i]->address())->Read(name).ok(),
                i == ShardOf(name, 3))
          << "shard " << i;
    }
  }
}

}  // namespace
}  // namespace varscope
