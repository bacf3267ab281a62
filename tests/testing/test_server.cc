#include "tests/testing/test_server.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "server/service/cluster_identity.h"

namespace varscope::testing {

std::string TempRoot() {
  const char* tmp = getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

TempDir::TempDir() {
  std::string pattern = absl::StrCat(TempRoot(), "/varscope-test-XXXXXX");
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed: " << strerror(errno);
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

bool PollUntil(const std::function<bool()>& done, absl::Duration bound) {
  const absl::Time give_up = absl::Now() + bound;
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

ClientOptions TestClientOptions() {
  ClientOptions options;
  options.timeout = absl::Minutes(10);
  return options;
}

std::map<std::string, std::string> DirectoryContents(const std::string& dir) {
  std::map<std::string, std::string> contents;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    contents[entry.path().filename().string()].assign(
        std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return contents;
}

TestServer::TestServer(server::ServerOptions options)
    : options_(std::move(options)) {
  options_.listen_address = "127.0.0.1:0";
  options_.data_dir = dir_.path();
  if (options_.backup_root.empty()) options_.backup_root = TempRoot();
  absl::Status status = Restart();
  if (!status.ok()) ADD_FAILURE() << "server start failed: " << status;
}

TestServer::~TestServer() { Stop(); }

std::string TestServer::address() const {
  return absl::StrCat("127.0.0.1:", server_->port());
}

std::shared_ptr<Client> TestServer::NewClient(
    const ClientOptions& options) const {
  return Client::Connect(address(), options);
}

absl::Status TestServer::Restart() {
  Stop();
  VS_ASSIGN_OR_RETURN(server_, server::Server::Start(options_));
  return absl::OkStatus();
}

void TestServer::Stop() { server_.reset(); }

std::string TestShardList(int count) {
  std::vector<std::string> shards;
  for (int i = 0; i < count; ++i)
    shards.push_back(absl::StrCat("shard", i, ":7070"));
  return absl::StrJoin(shards, ",");
}

std::vector<std::string> TestShardFlags(int index, int count) {
  return {absl::StrCat("--cluster=", TestShardList(count)),
          absl::StrCat("--shard-index=", index),
          absl::StrCat("--cluster-id=", kTestClusterId)};
}

server::ServerOptions TestShardOptions(int index, int count,
                                       server::ServerOptions options) {
  server::ClusterOptions cluster;
  cluster.shards = absl::StrSplit(TestShardList(count), ',');
  cluster.shard_index = index;
  cluster.cluster_id = kTestClusterId;
  absl::StatusOr<std::optional<v1::ClusterIdentity>> identity =
      server::ConfiguredIdentity(cluster);
  EXPECT_TRUE(identity.ok()) << identity.status();
  if (identity.ok()) options.cluster = *identity;
  return options;
}

std::string VarscopedPath() { return VARSCOPED_PATH; }

std::string TestWorkerPath() { return VARSCOPE_TEST_WORKER_PATH; }

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, bool capture_stderr) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0)
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    if (capture_stderr) dup2(fds[1], STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  child->pid_ = pid;
  child->stdout_fd_ = fds[0];
  return child;
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    Kill(SIGKILL);
    Wait();
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

std::vector<std::string> ChildProcess::ReadLines() {
  std::vector<std::string> lines;
  for (absl::StatusOr<std::string> line = ReadLine(); line.ok();
       line = ReadLine()) {
    lines.push_back(*std::move(line));
  }
  return lines;
}

absl::StatusOr<std::string> ChildProcess::ReadLine() {
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    char chunk[4096];
    const ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::NotFoundError("end of child output");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

void ChildProcess::Kill(int signal) {
  if (!reaped_) kill(pid_, signal);
}

void ChildProcess::Stop() {
  if (reaped_) return;
  kill(pid_, SIGSTOP);
  int status = 0;
  while (waitpid(pid_, &status, WUNTRACED) < 0 && errno == EINTR) {
  }
}

int ChildProcess::Wait() {
  if (reaped_) return 0;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  return status;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& data_dir, const std::vector<std::string>& extra_args,
    int port, const std::vector<std::string>& env) {
  std::vector<std::string> argv;
  if (!env.empty()) {
    argv.push_back("/usr/bin/env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  argv.insert(argv.end(),
              {VarscopedPath(), absl::StrCat("--listen=127.0.0.1:", port),
               absl::StrCat("--data-dir=", data_dir)});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto server = std::unique_ptr<ServerProcess>(new ServerProcess());
  VS_ASSIGN_OR_RETURN(server->process_, ChildProcess::Start(argv));
  VS_ASSIGN_OR_RETURN(server->serving_line_, server->process_->ReadLine());
  const std::string& line = server->serving_line_;
  // "varscoped serving on 127.0.0.1:PORT (data dir DIR, durability MODE)"
  const size_t colon = line.find("127.0.0.1:");
  const size_t space = line.find(' ', colon);
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(line.substr(colon + 10, space - colon - 10),
                        &server->port_)) {
    return absl::InternalError(absl::StrCat("unexpected first line: ", line));
  }
  return server;
}

std::string ServerProcess::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::pair<int, std::string> RunServer(
    const std::string& data_dir, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {VarscopedPath(), "--listen=127.0.0.1:0",
                                   absl::StrCat("--data-dir=", data_dir)};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(argv, /*capture_stderr=*/true);
  if (!child.ok()) return {-1, std::string(child.status().message())};
  std::string output;
  for (;;) {
    absl::StatusOr<std::string> line = (*child)->ReadLine();
    if (!line.ok()) break;
    absl::StrAppend(&output, *line, "\n");
    if (absl::StrContains(*line, "serving on")) (*child)->Kill(SIGTERM);
  }
  return {(*child)->Wait(), output};
}

}  // namespace varscope::testing
