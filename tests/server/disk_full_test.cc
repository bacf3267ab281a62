// A real full disk under a real varscoped: a small tmpfs (mounting one needs
// root; durability_test.cc's StoreFaultTest covers the same in-process with
// a file system that fills up as a real one does).
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;

// A tmpfs of `megabytes` mounted on a new directory, unmounted on
// destruction.
class Tmpfs {
 public:
  explicit Tmpfs(int megabytes) {
    const std::string size = absl::StrCat("size=", megabytes, "m");
    if (mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, size.c_str()) != 0) {
      error_ = std::strerror(errno);
    }
  }
  ~Tmpfs() {
    if (error_.empty()) umount2(dir_.path().c_str(), MNT_DETACH);
  }
  // Why it could not be mounted; empty if it is.
  const std::string& error() const { return error_; }
  const std::string& path() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::string error_;
};

// A 1 MiB float variable of random values.
v1::GetVariableRequest Create(const std::string& name) {
  return CreateRequest(name, v1::DT_FLOAT, {256, 1024},
                       v1::Initializer::RANDOM_UNIFORM);
}

// The reported case: a 64 MiB disk, 40 MiB taken, 1 MiB variables. RocksDB
// aborted the server at the first ENOSPC (its info log asserted), and
// recovered on its own only with 64 MiB free.
TEST(DiskFull,
     ServerAnswersResourceExhaustedStaysUpAndResumesOnceSpaceIsFreed) {
  Tmpfs disk(64);
  if (!disk.error().empty()) {
    GTEST_SKIP() << "cannot mount a tmpfs (" << disk.error()
                 << "): StoreFaultTest covers a full disk in-process";
  }
  const std::string filler = disk.path() + "/filler";
  std::ofstream(filler) << std::string(40 << 20, 'x');
  const std::string data_dir = disk.path() + "/data";
  VS_ASSERT_OK_AND_ASSIGN(auto server, ServerProcess::Start(data_dir));
  ClientOptions options;
  options.max_attempts = 1;  // see every error
  std::shared_ptr<Client> client = Client::Connect(server->address(), options);

  std::map<std::string, std::string> acknowledged;  // name -> bytes
  absl::Status full;
  for (int i = 0; i < 64 && full.ok(); ++i) {
    const std::string name = absl::StrCat("v", i);
    full = client->GetVariable(Create(name)).status();
    if (full.ok()) {
      VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read(name));
      acknowledged[name] = read.value.bytes();
    }
  }
  const auto no_space =
      StatusIs(absl::StatusCode::kResourceExhausted,
               HasSubstr(absl::StrCat(
                   "No space left on the disk of data directory ", data_dir,
                   ": the update was not applied; writes resume "
                   "once space is freed (")));
  EXPECT_THAT(full, no_space);
  ASSERT_FALSE(acknowledged.empty());

  // The disk stays full for longer than RocksDB's info log waits between
  // two writes of its buffered lines (5 s; its logger aborted on the line
  // after a failed one): every write fails, every read works.
  const absl::Time full_until = absl::Now() + absl::Seconds(6);
  while (absl::Now() < full_until) {
    EXPECT_THAT(client->GetVariable(Create("late")), no_space);
    VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("v0"));
    EXPECT_EQ(read.value.bytes(), acknowledged["v0"]);
    absl::SleepFor(absl::Milliseconds(100));
  }

  // A little space comes back: a few variables' worth, far less than the
  // unflushed writes (RocksDB waited for 64 MiB).
  fs::resize_file(filler, 36 << 20);
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  absl::Status resumed = client->GetVariable(Create("late")).status();
  while (!resumed.ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    resumed = client->GetVariable(Create("late")).status();
  }
  VS_ASSERT_OK(resumed);
  VS_ASSERT_OK_AND_ASSIGN(ReadResult late, client->Read("late"));
  acknowledged["late"] = late.value.bytes();

  // Nothing acknowledged is lost across a crash, and the logs the full disk
  // left torn do not stop the store from starting.
  server->process().Kill(SIGKILL);
  server->process().Wait();
  VS_ASSERT_OK_AND_ASSIGN(server, ServerProcess::Start(data_dir));
  client = Client::Connect(server->address(), options);
  for (const auto& [name, bytes] : acknowledged) {
    VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read(name));
    EXPECT_EQ(read.value.bytes(), bytes) << name;
  }
}

}  // namespace
}  // namespace varscope
