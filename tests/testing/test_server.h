// Test fixtures: temporary directories, an in-process server on a free
// port, and varscoped child processes.
#ifndef VARSCOPE_TESTS_TESTING_TEST_SERVER_H_
#define VARSCOPE_TESTS_TESTING_TEST_SERVER_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "server/service/server.h"
#include "server/service/variable_service.h"

namespace varscope::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Where TempDirs are made: $TMPDIR, else /tmp.
std::string TempRoot();

// Calls `done` every few milliseconds until it returns true, for up to
// `bound` (generous: a loaded machine is slow); false if it never did.
bool PollUntil(const std::function<bool()>& done,
               absl::Duration bound = absl::Minutes(2));

// Client options for tests: the defaults, but each call may take 10 minutes
// before DEADLINE_EXCEEDED, so that a loaded machine never fails a test.
ClientOptions TestClientOptions();

// The regular files in `dir` and their contents, by name.
std::map<std::string, std::string> DirectoryContents(const std::string& dir);

// An in-process server on 127.0.0.1:0 with its own data directory.
class TestServer {
 public:
  // `options` other than the address and data directory are kept; without a
  // backup root, checkpoints and backups may go anywhere under TempRoot()
  // (tests write them into TempDirs).
  explicit TestServer(server::ServerOptions options = {});
  ~TestServer();

  std::string address() const;
  // A new client of this server.
  std::shared_ptr<Client> NewClient(
      const ClientOptions& options = TestClientOptions()) const;
  // Shuts the server down and starts it again on the same data directory
  // (on a new port). Returns the start error, if any.
  absl::Status Restart();
  void Stop();
  const std::string& data_dir() const { return dir_.path(); }
  server::VariableServiceImpl& ServiceForTest() {
    return server_->ServiceForTest();
  }

 private:
  TempDir dir_;
  server::ServerOptions options_;
  std::unique_ptr<server::Server> server_;
};

// Test clusters. Their shards listen on port 0, so the shard list each one
// records names the shards by position ("shard0:7070", "shard1:7070", ...),
// not by the addresses clients reach them at: clients check positions and
// the cluster id (kTestClusterId), never addresses.
inline constexpr char kTestClusterId[] = "test-cluster";
// The varscoped flags of shard `index` of a test cluster of `count` shards.
std::vector<std::string> TestShardFlags(int index, int count);
// `options` with the identity of that shard.
server::ServerOptions TestShardOptions(int index, int count,
                                       server::ServerOptions options = {});
// The shard list test clusters of `count` shards record, comma-separated.
std::string TestShardList(int count);

// The path of the varscoped binary under test.
std::string VarscopedPath();
// The path of the varscope_test_worker binary (tests/testing/worker_main.cc).
std::string TestWorkerPath();

// A child process running a program, with its stdout readable line by line.
class ChildProcess {
 public:
  // Starts `argv[0]` with `argv`; with `capture_stderr`, its stderr goes to
  // the same pipe as its stdout. INTERNAL if it cannot be started.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, bool capture_stderr = false);
  ~ChildProcess();  // SIGKILLs and reaps the child if still running

  pid_t pid() const { return pid_; }
  // The next line of the child's stdout (without '\n'); NOT_FOUND at EOF.
  absl::StatusOr<std::string> ReadLine();
  // Every further line, until the child closes its stdout.
  std::vector<std::string> ReadLines();
  // Sends `signal`.
  void Kill(int signal);
  // Sends SIGSTOP and waits until the child has stopped (kill() returns
  // before it does, and a stopping server may still answer a call).
  void Stop();
  // Waits for the child and returns its wait status.
  int Wait();

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  bool reaped_ = false;
};

// A varscoped child process on 127.0.0.1 serving `data_dir`.
class ServerProcess {
 public:
  // Listens on `port`; 0 picks a free port (pass a restarted server's old
  // port only when its clients must find it again). `env`: NAME=VALUE
  // settings added to its environment.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& data_dir,
      const std::vector<std::string>& extra_args = {}, int port = 0,
      const std::vector<std::string>& env = {});
  std::string address() const;
  int port() const { return port_; }
  ChildProcess& process() { return *process_; }
  // "varscoped serving on ...".
  const std::string& serving_line() const { return serving_line_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
  std::string serving_line_;
};

// Runs varscoped on `data_dir` with `extra_args` until it serves (then
// stops it with SIGTERM) or exits; returns its wait status and all it
// printed (stdout and stderr).
std::pair<int, std::string> RunServer(
    const std::string& data_dir,
    const std::vector<std::string>& extra_args = {});

}  // namespace varscope::testing

#endif  // VARSCOPE_TESTS_TESTING_TEST_SERVER_H_
