// Durability modes, disk faults through a faulty RocksDB file system, and
// damaged data directories at start-up.
#include "server/table/durability.h"

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/crc32c.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "server/storage/storage.h"
#include "server/table/variable_table.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/raw_call.h"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::varscope::server::Durability;
using ::varscope::server::ParseDurability;
using ::varscope::testing::BatchOf;
using ::varscope::testing::CallRaw;
using ::varscope::testing::ChildProcess;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::FaultyEnv;
using ::varscope::testing::FaultyFileSystem;
using ::varscope::testing::PollUntil;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;
using ::varscope::testing::WholeUpdate;
using Fault = FaultyFileSystem::Fault;

constexpr int64_t kRows = 8;
constexpr int64_t kCols = 8;

// An int64 [kRows, kCols] tensor with every element `value`.
Tensor Filled(int64_t value) {
  return Tensor::FromVector<int64_t>(
      v1::DT_INT64, {kRows, kCols},
      std::vector<int64_t>(static_cast<size_t>(kRows * kCols), value));
}

v1::GetVariableRequest Create(const std::string& name) {
  return CreateRequest(name, v1::DT_INT64, {kRows, kCols},
                       v1::Initializer::ZEROS);
}

v1::BatchUpdateRequest AssignAll(const std::string& name, int64_t value) {
  return BatchOf(WholeUpdate(name, Filled(value), /*add=*/false));
}

// Sets row `row` of `name` to `value`, as update `sequence` of client "c".
v1::BatchUpdateRequest SetRow(const std::string& name, int64_t row,
                              int64_t value, int64_t sequence) {
  v1::BatchUpdateRequest request;
  request.mutable_id()->set_client_id("c");
  request.mutable_id()->set_sequence(sequence);
  v1::Update* update = request.add_updates();
  update->set_name(name);
  v1::Scatter* scatter = update->mutable_scatter();
  TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {1}, {&row, 1}),
                scatter->mutable_indices());
  TensorToProto(Tensor::FromVector<int64_t>(
                    v1::DT_INT64, {1, kCols},
                    std::vector<int64_t>(static_cast<size_t>(kCols), value)),
                scatter->mutable_rows());
  scatter->set_mode(v1::Scatter::UPDATE);
  return request;
}

std::vector<int64_t> Elements(const Tensor& t) {
  auto flat = t.flat<int64_t>();
  return {flat.begin(), flat.end()};
}

// Each row's first element.
std::vector<int64_t> RowHeads(const Tensor& t) {
  std::vector<int64_t> heads;
  for (int64_t r = 0; r < kRows; ++r)
    heads.push_back(t.flat<int64_t>()[r * kCols]);
  return heads;
}

// Retries `call` until it returns OK, for up to two minutes (the store
// tries to resume once a second after a fault clears; a loaded machine is
// slow).
template <typename Call>
auto Eventually(Call call) -> decltype(call()) {
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  for (;;) {
    auto result = call();
    if (result.ok() || absl::Now() > deadline) return result;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

TEST(Crc32c, MatchesTheStandardCheckValues) {
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8a9136aau);
  // Extending a CRC equals the CRC of the concatenation, whatever the split.
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (size_t split = 0; split <= text.size(); ++split) {
    EXPECT_EQ(Crc32c(absl::string_view(text).substr(split),
                     Crc32c(text.substr(0, split))),
              Crc32c(text));
  }
}

// Bit by bit, as the definition reads.
uint32_t ReferenceCrc32c(absl::string_view data) {
  uint32_t c = ~0u;
  for (unsigned char byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78 : c >> 1;
  }
  return ~c;
}

TEST(Crc32c, LongAndUnalignedInputsMatchTheDefinition) {
  std::mt19937 random(7);
  std::string data(64 << 10, '\0');
  for (char& c : data) c = static_cast<char>(random());
  // Lengths around word multiples, at odd offsets.
  for (size_t size : {size_t{0}, size_t{7}, size_t{12287}, size_t{12288},
                      size_t{12289}, size_t{24576 + 100}, size_t{60000}}) {
    for (size_t offset : {size_t{0}, size_t{1}, size_t{3}}) {
      const absl::string_view part =
          absl::string_view(data).substr(offset, size);
      EXPECT_EQ(Crc32c(part), ReferenceCrc32c(part))
          << size << " bytes at " << offset;
    }
  }
  const absl::string_view all = data;
  EXPECT_EQ(Crc32c(all.substr(20000), Crc32c(all.substr(0, 20000))),
            ReferenceCrc32c(all));
}

TEST(ParseDurability, ReadsTheThreeModes) {
  VS_ASSERT_OK_AND_ASSIGN(Durability wal, ParseDurability("wal"));
  EXPECT_EQ(wal.mode, Durability::Mode::kWal);
  VS_ASSERT_OK_AND_ASSIGN(Durability sync, ParseDurability("sync"));
  EXPECT_EQ(sync.mode, Durability::Mode::kSync);
  VS_ASSERT_OK_AND_ASSIGN(Durability interval,
                          ParseDurability("interval=1.5s"));
  EXPECT_EQ(interval.mode, Durability::Mode::kInterval);
  EXPECT_EQ(interval.interval, absl::Milliseconds(1500));
  EXPECT_EQ(server::DurabilityToString(interval), "interval=1.5s");
}

TEST(ParseDurability, RejectsOtherTextSayingWhatItExpects) {
  EXPECT_THAT(ParseDurability("fsync"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown durability mode 'fsync': expected wal, sync or "
                       "interval=DURATION (e.g. interval=200ms)"));
  for (const char* bad : {"interval=", "interval=soon", "interval=0s",
                          "interval=500us", "interval=inf"}) {
    EXPECT_THAT(ParseDurability(bad),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("expected a duration of at least 1ms")))
        << bad;
  }
}

// An in-process server on a faulty file system.
class StoreFaultTest : public ::testing::Test {
 protected:
  void Start(const std::string& durability) {
    server::ServerOptions options;
    options.storage.env = faulty_.env.get();
    auto parsed = ParseDurability(durability);
    ASSERT_TRUE(parsed.ok());
    options.table.durability = *parsed;
    options.table.chunk_bytes = kCols * 8;  // one row per chunk
    server_ = std::make_unique<TestServer>(options);
    Connect();
  }

  void Connect() {
    ClientOptions options = ::varscope::testing::TestClientOptions();
    options.max_attempts = 1;  // see every error
    client_ = server_->NewClient(options);
  }

  void Restart() {
    VS_ASSERT_OK(server_->Restart());
    Connect();
  }

  void Fail(Fault fault) { faulty_.fs->set_fault(fault); }

  FaultyEnv faulty_;  // outlives the server
  std::unique_ptr<TestServer> server_;
  std::shared_ptr<Client> client_;
};

// As a real disk fills up (see also disk_full_test.cc): writes fail part way
// through a file, RocksDB's info log fails too (RocksDB's own logger aborted
// the process on its next line), and only a little space comes back.
TEST_F(StoreFaultTest, FullDiskFailsWritesWithResourceExhaustedUntilFreed) {
  Start("wal");
  VS_ASSERT_OK(client_->GetVariable(Create("w")));
  VS_ASSERT_OK(client_->BatchUpdate(AssignAll("w", 1)));

  // Room for part of the next write-ahead log record.
  faulty_.fs->set_free_bytes(200);
  const auto no_space = StatusIs(
      absl::StatusCode::kResourceExhausted,
      HasSubstr(absl::StrCat("No space left on the disk of data directory ",
                             server_->data_dir(),
                             ": the update was not applied; writes resume "
                             "once space is freed (")));
  EXPECT_THAT(client_->BatchUpdate(AssignAll("w", 2)), no_space);
  EXPECT_THAT(client_->GetVariable(Create("x")), no_space);
  EXPECT_THAT(client_->Delete("w", false), no_space);
  // Writes go on failing, and the server on serving, while RocksDB logs
  // into the full disk.
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (faulty_.fs->failures("LOG") < 2 && absl::Now() < deadline) {
    EXPECT_THAT(client_->BatchUpdate(AssignAll("w", 2)), no_space);
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GE(faulty_.fs->failures("LOG"), 2);
  // Reads keep working and see nothing of the failed writes.
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(read.value.flat<int64_t>()[0], 1);
  EXPECT_EQ(read.version, 2);
  EXPECT_THAT(client_->Stat("x"), StatusIs(absl::StatusCode::kNotFound));

  // Far less than a memtable (RocksDB waited for 64 MiB).
  faulty_.fs->set_free_bytes(1 << 20);
  VS_ASSERT_OK_AND_ASSIGN(v1::BatchUpdateResponse applied, Eventually([&] {
                            return client_->BatchUpdate(AssignAll("w", 3));
                          }));
  EXPECT_EQ(applied.versions(0), 3);
  faulty_.fs->set_free_bytes(FaultyFileSystem::kUnlimited);

  Restart();
  VS_ASSERT_OK_AND_ASSIGN(read, client_->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(3)));
  EXPECT_EQ(read.version, 3);
  EXPECT_THAT(client_->Stat("x"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(StoreFaultTest, IoErrorFailsWritesWithUnavailableUntilTheDiskWorks) {
  Start("wal");
  VS_ASSERT_OK(client_->GetVariable(Create("w")));

  Fail(Fault::kIoError);
  EXPECT_THAT(client_->BatchUpdate(AssignAll("w", 5)),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("I/O error writing data directory"),
                             HasSubstr("the update was not applied"))));
  // Still failing: nothing is written while the disk fails.
  EXPECT_THAT(client_->BatchUpdate(AssignAll("w", 6)),
              StatusIs(absl::StatusCode::kUnavailable));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(0)));

  Fail(Fault::kNone);
  VS_ASSERT_OK(
      Eventually([&] { return client_->BatchUpdate(AssignAll("w", 7)); }));
  VS_ASSERT_OK(client_->GetVariable(Create("x")));

  Restart();
  VS_ASSERT_OK_AND_ASSIGN(read, client_->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(7)));
  EXPECT_EQ(read.version, 2);
  VS_EXPECT_OK(client_->Stat("x"));
}

// A slow fsync holds up the changes that wait for it, not the server: no
// gRPC reaction waits with it (the changes run on the service's executor).
// Ordering by state: every other call answers while the sync is still held.
TEST_F(StoreFaultTest, SlowFsyncHoldsUpNoOtherCall) {
  Start("sync");
  VS_ASSERT_OK(client_->GetVariable(Create("w")));

  faulty_.fs->HoldLogSyncs(true);
  absl::StatusOr<v1::BatchUpdateResponse> held;
  std::thread writer([&] { held = client_->BatchUpdate(AssignAll("w", 5)); });
  ASSERT_TRUE(::varscope::testing::PollUntil(
      [&] { return faulty_.fs->held_syncs() == 1; }));

  // Reads answer from memory, without the held change.
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(0)));
  EXPECT_EQ(read.version, 1);
  VS_ASSERT_OK_AND_ASSIGN(v1::VariableInfo info, client_->Stat("w"));
  EXPECT_EQ(info.version(), 1);
  VS_EXPECT_OK(client_->GetServerInfo());
  VS_ASSERT_OK_AND_ASSIGN(v1::ListVariablesResponse listed,
                          client_->ListVariables(v1::ListVariablesRequest()));
  EXPECT_EQ(listed.entries_size(), 1);
  // A change that needs no store write (a REUSE) answers too.
  v1::GetVariableRequest reuse = Create("w");
  reuse.set_mode(v1::REUSE);
  VS_EXPECT_OK(client_->GetVariable(reuse));
  EXPECT_EQ(faulty_.fs->held_syncs(), 1);  // all of it while held

  faulty_.fs->HoldLogSyncs(false);
  writer.join();
  VS_ASSERT_OK(held);
  EXPECT_EQ(held->versions(0), 2);
  VS_ASSERT_OK_AND_ASSIGN(read, client_->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(5)));
}

// A write whose fsync failed may still be in the log that RocksDB replays
// when the store reopens; it was reported failed, so it must not reappear.
TEST_F(StoreFaultTest, WriteWhoseSyncFailedIsUndoneWhenTheStoreReopens) {
  Start("sync");
  VS_ASSERT_OK(client_->GetVariable(Create("w")));

  Fail(Fault::kSyncIoError);
  EXPECT_THAT(client_->BatchUpdate(SetRow("w", 0, 7, /*sequence=*/1)),
              StatusIs(absl::StatusCode::kUnavailable));
  Fail(Fault::kNone);
  VS_ASSERT_OK_AND_ASSIGN(
      v1::BatchUpdateResponse second, Eventually([&] {
        return client_->BatchUpdate(SetRow("w", 7, 9, /*sequence=*/2));
      }));
  EXPECT_FALSE(second.duplicate());
  EXPECT_EQ(second.versions(0), 2);

  const std::vector<int64_t> expected = {0, 0, 0, 0, 0, 0, 0, 9};
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(RowHeads(read.value), expected);
  Restart();
  VS_ASSERT_OK_AND_ASSIGN(read, client_->Read("w"));
  EXPECT_EQ(RowHeads(read.value), expected);
  EXPECT_EQ(read.version, 2);

  // The failed update was not recorded as applied: its retry applies it,
  // once.
  VS_ASSERT_OK_AND_ASSIGN(v1::BatchUpdateResponse retry,
                          client_->BatchUpdate(SetRow("w", 0, 7, 1)));
  EXPECT_FALSE(retry.duplicate());
  EXPECT_EQ(retry.versions(0), 3);
  Restart();
  VS_ASSERT_OK_AND_ASSIGN(retry, client_->BatchUpdate(SetRow("w", 0, 7, 1)));
  EXPECT_TRUE(retry.duplicate());
  VS_ASSERT_OK_AND_ASSIGN(read, client_->Read("w"));
  EXPECT_EQ(RowHeads(read.value),
            (std::vector<int64_t>{7, 0, 0, 0, 0, 0, 0, 9}));
  EXPECT_EQ(read.version, 3);
}

TEST_F(StoreFaultTest, IntervalModeRefusesUpdatesWhileFlushesFail) {
  Start("interval=20ms");
  VS_ASSERT_OK(client_->GetVariable(Create("w")));
  VS_ASSERT_OK(client_->BatchUpdate(AssignAll("w", 1)));

  Fail(Fault::kIoError);
  int64_t acked = 1;
  absl::Status refused;
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (refused.ok() && absl::Now() < deadline) {
    refused = client_->BatchUpdate(AssignAll("w", acked + 1)).status();
    if (refused.ok()) ++acked;
  }
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("I/O error writing data directory")));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(acked)));

  Fail(Fault::kNone);
  VS_ASSERT_OK(Eventually(
      [&] { return client_->BatchUpdate(AssignAll("w", acked + 1)); }));
  Restart();
  VS_ASSERT_OK_AND_ASSIGN(read, client_->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(acked + 1)));
}

// What grpc.health.v1 Check answers for `service` at `address`: the
// serialized HealthCheckResponse ("\x08\x01" SERVING, "\x08\x02"
// NOT_SERVING), or the call's error.
std::string Health(const std::string& address, const std::string& service) {
  // HealthCheckRequest{service}: field 1, length-delimited.
  const std::string request =
      service.empty()
          ? ""
          : absl::StrCat("\x0a",
                         std::string(1, static_cast<char>(service.size())),
                         service);
  std::vector<std::string> replies;
  const grpc::Status status =
      CallRaw(address, "/grpc.health.v1.Health/Check", request, &replies);
  if (!status.ok()) return absl::StrCat("error: ", status.error_message());
  return replies.size() == 1 ? replies[0] : "no single reply";
}

const std::string kServing("\x08\x01", 2);
const std::string kNotServing("\x08\x02", 2);

// Health follows the store: NOT_SERVING from the first failed write, and
// SERVING again once the store takes writes, without a client writing.
// "liveness" stays SERVING throughout (a restart would not free the disk).
TEST_F(StoreFaultTest, HealthIsNotServingWhileTheDiskIsFull) {
  Start("wal");
  const std::string address = server_->address();
  VS_ASSERT_OK(client_->GetVariable(Create("w")));
  EXPECT_EQ(Health(address, ""), kServing);
  EXPECT_EQ(Health(address, "liveness"), kServing);

  faulty_.fs->set_free_bytes(200);
  EXPECT_THAT(client_->BatchUpdate(AssignAll("w", 1)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(Health(address, ""), kNotServing);
  EXPECT_EQ(Health(address, "liveness"), kServing);
  // Still full: the server's own retries keep failing.
  EXPECT_THAT(client_->BatchUpdate(AssignAll("w", 2)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(Health(address, ""), kNotServing);
  VS_EXPECT_OK(client_->Read("w"));  // reads go on

  faulty_.fs->set_free_bytes(FaultyFileSystem::kUnlimited);
  EXPECT_TRUE(PollUntil([&] { return Health(address, "") == kServing; }))
      << "still " << Health(address, "");
  VS_EXPECT_OK(client_->BatchUpdate(AssignAll("w", 3)));
  EXPECT_EQ(Health(address, ""), kServing);
  EXPECT_EQ(Health(address, "liveness"), kServing);
}

TEST_F(StoreFaultTest, HealthIsNotServingWhileIntervalFlushesFail) {
  Start("interval=20ms");
  const std::string address = server_->address();
  VS_ASSERT_OK(client_->GetVariable(Create("w")));
  EXPECT_EQ(Health(address, ""), kServing);

  Fail(Fault::kIoError);
  VS_ASSERT_OK(client_->BatchUpdate(AssignAll("w", 1)));  // to flush
  EXPECT_TRUE(PollUntil([&] { return Health(address, "") == kNotServing; }))
      << "still " << Health(address, "");
  EXPECT_EQ(Health(address, "liveness"), kServing);
  EXPECT_THAT(client_->BatchUpdate(AssignAll("w", 2)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Health(address, ""), kNotServing);

  Fail(Fault::kNone);
  EXPECT_TRUE(PollUntil([&] { return Health(address, "") == kServing; }))
      << "still " << Health(address, "");
  VS_EXPECT_OK(client_->BatchUpdate(AssignAll("w", 3)));
}

// The table on its own: a failed flush keeps what it was to write.
TEST(IntervalFlush, FailedFlushKeepsItsChangesForTheNext) {
  TempDir dir;
  FaultyEnv faulty;
  server::StorageOptions storage_options;
  storage_options.env = faulty.env.get();
  VS_ASSERT_OK_AND_ASSIGN(auto storage,
                          server::Storage::Open(storage_options, dir.path()));
  server::TableOptions options;
  options.durability = *ParseDurability("interval=1h");  // flushes by hand
  {
    VS_ASSERT_OK_AND_ASSIGN(
        auto table, server::VariableTable::Load(options, storage.get()));
    VS_ASSERT_OK(table->GetVariable(Create("w")));
    VS_ASSERT_OK(table->BatchUpdate(AssignAll("w", 4)));

    faulty.fs->set_fault(Fault::kIoError);
    EXPECT_THAT(table->Flush(), StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_THAT(table->BatchUpdate(AssignAll("w", 5)),
                StatusIs(absl::StatusCode::kUnavailable));
    faulty.fs->set_fault(Fault::kNone);
    VS_ASSERT_OK(Eventually([&] { return table->Flush(); }));
  }  // nothing is pending: closing writes nothing more
  VS_ASSERT_OK_AND_ASSIGN(auto table,
                          server::VariableTable::Load(options, storage.get()));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, table->Read("w"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(4)));
  EXPECT_EQ(read.version, 2);
}

// The version of variable `name` in the store in `dir` (opened read-only,
// beside the server writing it), or 0 if it has none there.
int64_t StoredVersion(const std::string& dir, const std::string& name) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* family : {"default", "meta"}) {
    descriptors.emplace_back(family, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  rocksdb::DB* db = nullptr;
  if (!rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir, descriptors,
                                    &families, &db)
           .ok()) {
    return 0;
  }
  std::string value;
  v1::StoredVariable meta;
  const bool found =
      db->Get(rocksdb::ReadOptions(), families[1], name, &value).ok() &&
      meta.ParseFromString(value);
  for (auto* h : families)
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  delete db;
  return found ? meta.info().version() : 0;
}

// Acknowledged at once, on disk only after the next flush.
TEST(IntervalFlush, KillBeforeTheFirstFlushLosesTheChangesAfterItKeepsThem) {
  for (const bool wait_for_flush : {false, true}) {
    TempDir dir;
    VS_ASSERT_OK_AND_ASSIGN(
        auto server,
        ServerProcess::Start(dir.path(),
                             {wait_for_flush ? "--durability=interval=50ms"
                                             : "--durability=interval=1h"}));
    std::shared_ptr<Client> client = Client::Connect(server->address());
    VS_ASSERT_OK(client->GetVariable(Create("w")));
    VS_ASSERT_OK(client->BatchUpdate(AssignAll("w", 3)));
    if (wait_for_flush) {
      ASSERT_TRUE(::varscope::testing::PollUntil([&] {
        return StoredVersion(dir.path(), "w") == 2;
      })) << "no flush";
    }
    server->process().Kill(SIGKILL);
    server->process().Wait();

    VS_ASSERT_OK_AND_ASSIGN(auto restarted, ServerProcess::Start(dir.path()));
    absl::StatusOr<ReadResult> read =
        Client::Connect(restarted->address())->Read("w");
    if (wait_for_flush) {
      VS_ASSERT_OK(read);
      EXPECT_EQ(Elements(read->value), Elements(Filled(3)));
      EXPECT_EQ(read->version, 2);
    } else {
      EXPECT_THAT(read, StatusIs(absl::StatusCode::kNotFound));
    }
  }
}

// A sparse update writes a row record of the rows it touched, not their
// chunks or the variable's metadata; the records are consolidated into a
// whole write once they outgrow the variable, and a reload applies them in
// order with the last one's version.
TEST(RowRecords, SparseUpdatesReloadExactlyInEveryMode) {
  for (const char* mode : {"wal", "interval=1h"}) {
    SCOPED_TRACE(mode);
    TempDir dir;
    VS_ASSERT_OK_AND_ASSIGN(
        auto storage,
        server::Storage::Open(server::StorageOptions(), dir.path()));
    server::TableOptions options;
    options.durability = *ParseDurability(mode);
    std::vector<int64_t> expected(static_cast<size_t>(kRows * kCols), 0);
    int64_t version = 1;
    {
      VS_ASSERT_OK_AND_ASSIGN(
          auto table, server::VariableTable::Load(options, storage.get()));
      VS_ASSERT_OK(table->GetVariable(Create("w")));
      VS_ASSERT_OK(table->Flush());
      for (int64_t i = 0; i < 3 * kRows; ++i) {
        const int64_t row = (i * 5) % kRows;
        VS_ASSERT_OK(table->BatchUpdate(SetRow("w", row, i + 1, i + 1)));
        std::fill_n(expected.begin() + row * kCols, kCols, i + 1);
        ++version;
        if (i % 2 == 1) {
          VS_ASSERT_OK(table->Flush());  // interval: a record
        }
        if (i == 2) {
          // Records only so far: the stored metadata is the creation's.
          EXPECT_EQ(StoredVersion(dir.path(), "w"), 1);
        }
      }
      // Consolidated since (the records outgrew the variable).
      EXPECT_GT(StoredVersion(dir.path(), "w"), 1);
    }
    VS_ASSERT_OK_AND_ASSIGN(
        auto table, server::VariableTable::Load(options, storage.get()));
    VS_ASSERT_OK_AND_ASSIGN(ReadResult read, table->Read("w"));
    EXPECT_EQ(Elements(read.value), expected);
    EXPECT_EQ(read.version, version);
  }
}

TEST(IntervalFlush, CleanShutdownWritesThePendingChanges) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(
      auto server,
      ServerProcess::Start(dir.path(), {"--durability=interval=1h"}));
  std::shared_ptr<Client> client = Client::Connect(server->address());
  VS_ASSERT_OK(client->GetVariable(Create("w")));
  VS_ASSERT_OK(client->BatchUpdate(AssignAll("w", 3)));
  VS_ASSERT_OK(client->Rename("w", "v"));
  server->process().Kill(SIGTERM);
  const int status = server->process().Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  VS_ASSERT_OK_AND_ASSIGN(auto restarted, ServerProcess::Start(dir.path()));
  client = Client::Connect(restarted->address());
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("v"));
  EXPECT_EQ(Elements(read.value), Elements(Filled(3)));
  EXPECT_THAT(client->Stat("w"), StatusIs(absl::StatusCode::kNotFound));
}

// Expects varscoped to refuse the store in `dir`, exiting 1 with `message`.
template <typename Matcher>
void ExpectStartRefused(const std::string& dir, Matcher message) {
  auto [status, output] = testing::RunServer(dir);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << output;
  EXPECT_THAT(output, AllOf(message, Not(HasSubstr("serving on"))));
}

// As ExpectStartRefused, for damage found before RocksDB may change the
// store: expects every file of it as it was.
template <typename Matcher>
void ExpectStartRefusedUntouched(const std::string& dir, Matcher message) {
  const std::map<std::string, std::string> before =
      testing::DirectoryContents(dir);
  ExpectStartRefused(dir, message);
  EXPECT_TRUE(testing::DirectoryContents(dir) == before)
      << "the refused start changed the data directory";
}

// A store with two variables flushed to SST and blob files.
// Issue 13: sparse updates write row records to the data family only, so
// the metadata's memtable (and with it every log file since the variable
// was created) was never flushed: a restart replayed gigabytes. The log
// stays within a few times max_log_bytes (all 32 MiB stay without it).
TEST(Storage, TheLogStaysNearItsLimitWhenOneFamilyIsIdle) {
  TempDir dir;
  server::StorageOptions options;
  options.max_log_bytes = 1 << 20;
  VS_ASSERT_OK_AND_ASSIGN(std::unique_ptr<server::Storage> storage,
                          server::Storage::Open(options, dir.path()));
  v1::StoredVariable meta;
  meta.mutable_info()->set_name("v");
  meta.set_chunk_bytes(256 << 10);
  const std::string chunk(256 << 10, 'x');
  server::StorageBatch created;
  created.PutMeta(meta);
  VS_ASSERT_OK(storage->Write(created));
  for (int i = 0; i < 128; ++i) {  // 32 MiB of chunks, no metadata
    server::StorageBatch batch;
    batch.PutChunk(meta, i % 4, chunk);
    VS_ASSERT_OK(storage->Write(batch));
  }
  const auto log_bytes = [&] {
    int64_t bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
      if (entry.path().extension() == ".log") {
        bytes += static_cast<int64_t>(entry.file_size());
      }
    }
    return bytes;
  };
  // Old log files go once the flushes they wait for are done. RocksDB
  // weighs the log against its limit when a write comes, so the poll goes
  // on writing (a small variable of its own): on a loaded machine the last
  // of the writes above may come before the flushes it asked for.
  v1::StoredVariable small;
  small.mutable_info()->set_name("w");
  small.set_chunk_bytes(64);
  const std::string small_chunk(64, 'y');
  EXPECT_TRUE(PollUntil([&] {
    server::StorageBatch batch;
    batch.PutChunk(small, 0, small_chunk);
    EXPECT_TRUE(storage->Write(batch).ok());
    return log_bytes() < (8 << 20);
  })) << log_bytes()
      << " bytes of log";
}

class DamagedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server::ServerOptions options;
    options.table.chunk_bytes = 64 << 10;  // 16 chunks, in blob files
    TestServer server(options);
    std::shared_ptr<Client> client = server.NewClient();
    for (const char* name : {"model/a", "model/b"}) {
      v1::GetVariableRequest request;
      request.set_name(name);
      request.set_mode(v1::CREATE);
      request.set_dtype(v1::DT_FLOAT);
      request.mutable_shape()->add_dims(256);
      request.mutable_shape()->add_dims(1024);  // 1 MiB
      request.mutable_initializer()->set_kind(v1::Initializer::ONES);
      ASSERT_TRUE(client->GetVariable(request).ok());
    }
    // Reopening moves the log into SST and blob files.
    ASSERT_TRUE(server.Restart().ok());
    server.Stop();
    fs::copy(server.data_dir(), dir_.path(), fs::copy_options::recursive);
  }

  // The files of the store whose names end with `suffix`, largest first.
  std::vector<fs::path> Files(const std::string& suffix) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir_.path())) {
      if (!entry.is_regular_file()) continue;
      const std::string name = entry.path().filename().string();
      if (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) ==
              0) {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
      return fs::file_size(a) > fs::file_size(b);
    });
    return files;
  }

  // Runs `edit` on the store's RocksDB opened directly; `families` are
  // default, meta, data, applied, embedding.
  void EditStore(
      const std::function<void(
          rocksdb::DB*, std::vector<rocksdb::ColumnFamilyHandle*>&)>& edit) {
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const char* name :
         {"default", "meta", "data", "applied", "embedding"}) {
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> families;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir_.path(),
                                  descriptors, &families, &db)
                    .ok());
    edit(db, families);
    for (auto* h : families) {
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    }
    delete db;
  }

  // Flips a byte in the middle of a chunk's bytes (the middle of the file is
  // between the two variables, in a record header whose copy is not what
  // gets served).
  void FlipAByteOfAChunk() {
    const std::vector<fs::path> blobs = Files(".blob");
    ASSERT_FALSE(blobs.empty());
    std::fstream file(blobs.front(),
                      std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(fs::file_size(blobs.front()) / 4));
    file.put('\x5a');
  }

  static void Truncate(const fs::path& file) {
    fs::resize_file(file, fs::file_size(file) / 2);
  }

  // Damage found when every variable loads, once RocksDB opened the store.
  template <typename Matcher>
  void ExpectRefused(Matcher message) {
    ExpectStartRefused(dir_.path(), message);
  }
  // Damage found before RocksDB may change the store.
  template <typename Matcher>
  void ExpectRefusedUntouched(Matcher message) {
    ExpectStartRefusedUntouched(dir_.path(), message);
  }

  TempDir dir_;
};

TEST_F(DamagedStoreTest, IntactStoreStarts) {
  auto [status, output] = testing::RunServer(dir_.path());
  EXPECT_THAT(output, HasSubstr("serving on"));
}

TEST_F(DamagedStoreTest, TruncatedManifestIsRefused) {
  const std::vector<fs::path> manifests = Files("");
  for (const fs::path& file : manifests) {
    if (file.filename().string().rfind("MANIFEST-", 0) == 0) Truncate(file);
  }
  ExpectRefusedUntouched(
      AllOf(HasSubstr("varscoped: DATA_LOSS: Opening data directory"),
            HasSubstr("The data directory is damaged")));
}

TEST_F(DamagedStoreTest, TruncatedTableFileIsRefused) {
  for (const fs::path& file : Files(".sst")) Truncate(file);
  ExpectRefusedUntouched(
      AllOf(HasSubstr("varscoped: DATA_LOSS: Opening data directory"),
            HasSubstr("Corruption: file is too short"),
            HasSubstr("The data directory is damaged")));
}

TEST_F(DamagedStoreTest, TruncatedBlobFileIsRefused) {
  const std::vector<fs::path> blobs = Files(".blob");
  ASSERT_FALSE(blobs.empty());
  Truncate(blobs.front());
  ExpectRefused(AllOf(
      HasSubstr("varscoped: DATA_LOSS: Reading stored variable 'model/"),
      HasSubstr("Corruption: "), HasSubstr("The data directory is damaged")));
}

TEST_F(DamagedStoreTest, FlippedByteInABlobFileIsRefused) {
  FlipAByteOfAChunk();
  ExpectRefused(AllOf(
      HasSubstr("varscoped: DATA_LOSS: Stored variable 'model/"),
      HasSubstr("is damaged: chunk "), HasSubstr(" of 16 fails its checksum"),
      HasSubstr("The data directory is damaged")));
}

// Stores written before chunk checksums existed: RocksDB's checks apply.
TEST_F(DamagedStoreTest, ChunksWithoutChecksumsAreCheckedByRocksDb) {
  EditStore([](rocksdb::DB* db, auto& families) {
    for (const char* name : {"model/a", "model/b"}) {
      std::string value;
      ASSERT_TRUE(
          db->Get(rocksdb::ReadOptions(), families[1], name, &value).ok());
      v1::StoredVariable meta;
      ASSERT_TRUE(meta.ParseFromString(value));
      ASSERT_EQ(meta.chunk_crc32c_size(), 16);
      meta.clear_chunk_crc32c();
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), families[1], name,
                          meta.SerializeAsString())
                      .ok());
    }
  });
  EXPECT_THAT(testing::RunServer(dir_.path()).second, HasSubstr("serving on"));
  FlipAByteOfAChunk();
  ExpectRefused(AllOf(
      HasSubstr("varscoped: DATA_LOSS: Reading stored variable 'model/"),
      HasSubstr("Corruption: "), HasSubstr("The data directory is damaged")));
}

TEST_F(DamagedStoreTest, MissingChunkIsRefusedNamingTheVariable) {
  EditStore([](rocksdb::DB* db, auto& families) {
    std::string key("model/b\0\0\0\0\0\0\0\0\2", 16);  // chunk 2
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), families[2], key).ok());
  });
  ExpectRefused(HasSubstr(
      "varscoped: DATA_LOSS: Stored variable 'model/b' is damaged: chunk 2 "
      "of 16 is missing. The data directory is damaged"));
}

TEST_F(DamagedStoreTest, DamagedRowRecordIsRefusedNamingTheVariable) {
  EditStore([](rocksdb::DB* db, auto& families) {
    std::string key("model/a\0\x80\0\0\0\0\0\0\x01", 16);
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), families[2], key, "not a record")
            .ok());
  });
  ExpectRefused(HasSubstr(
      "Stored variable 'model/a' is damaged: a row record fails its checksum"));
}

TEST_F(DamagedStoreTest, MissingCurrentFileIsNotReplacedByAnEmptyStore) {
  fs::remove(fs::path(dir_.path()) / "CURRENT");
  ExpectRefusedUntouched(HasSubstr(
      "varscoped: DATA_LOSS: Data directory " + dir_.path() +
      " holds a store's files but its CURRENT file is missing. The data "
      "directory is damaged; varscoped does not serve it. Restore a backup or "
      "checkpoint into a new directory (varscope restore) and start on that"));
}

TEST_F(DamagedStoreTest, MissingManifestIsRefused) {
  std::string manifest;
  for (const fs::path& file : Files("")) {
    if (file.filename().string().rfind("MANIFEST-", 0) == 0) {
      manifest = file.string();
      fs::remove(file);
    }
  }
  ExpectRefusedUntouched(
      HasSubstr("varscoped: DATA_LOSS: Opening data directory " + dir_.path() +
                ": a file of the store is missing (IO error: No such file or "
                "directory: While opening a file for sequentially reading: " +
                manifest +
                ": No such file or directory). The data directory is "
                "damaged"));
}

// Not a store: the operator pointed varscoped at the wrong directory.
TEST(DataDirectory, WithOtherFilesOnlyIsNotTakenForAStore) {
  TempDir dir;
  std::ofstream(fs::path(dir.path()) / "notes.txt") << "not a store\n";
  ExpectStartRefusedUntouched(
      dir.path(),
      HasSubstr("varscoped: FAILED_PRECONDITION: Data directory " + dir.path() +
                " holds files but no store (its CURRENT file is missing): "
                "not starting on it, and not creating an empty store over "
                "it"));
}

TEST_F(DamagedStoreTest, MissingTableFileIsRefused) {
  const std::vector<fs::path> tables = Files(".sst");
  ASSERT_FALSE(tables.empty());
  fs::remove(tables.front());
  ExpectRefusedUntouched(
      AllOf(HasSubstr("varscoped: DATA_LOSS: Opening data directory"),
            HasSubstr("No such file or directory"),
            HasSubstr("The data directory is damaged")));
}

// RocksDB opens a store whose MANIFEST lost its latest edits as the older
// store it describes, and deletes the newer files: refused before that.
TEST_F(DamagedStoreTest, ManifestThatLostItsLatestEditsIsRefused) {
  const fs::path saved = fs::path(dir_.path()) / "saved";
  fs::create_directory(saved);
  for (const fs::path& file : Files("")) {
    const std::string name = file.filename().string();
    if (name == "CURRENT" || name.rfind("MANIFEST-", 0) == 0) {
      fs::copy(file, saved / name);
    }
  }
  {
    server::ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = dir_.path();
    VS_ASSERT_OK_AND_ASSIGN(auto server, server::Server::Start(options));
    std::shared_ptr<Client> client =
        Client::Connect(absl::StrCat("127.0.0.1:", server->port()));
    VS_ASSERT_OK(client->GetVariable(Create("model/c")));
  }  // a clean close: model/c is in the table files
  for (const fs::path& file : Files("")) {
    if (file.filename().string().rfind("MANIFEST-", 0) == 0) fs::remove(file);
  }
  for (const auto& entry : fs::directory_iterator(saved)) {
    fs::copy(entry.path(), fs::path(dir_.path()) / entry.path().filename(),
             fs::copy_options::overwrite_existing);
  }
  fs::remove_all(saved);
  ExpectRefusedUntouched(
      HasSubstr("varscoped: DATA_LOSS: Opening data directory " + dir_.path() +
                ": it recovers writes up to sequence"));
}

// The reported case: a store whose every write is still in its write-ahead
// log (40 variables, 5 acknowledged assigns each), its server killed.
class LogDamageTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    Start();
    for (int i = 0; i < kVariables; ++i) {
      VS_ASSERT_OK(client_->GetVariable(Create(Name(i))));
    }
    for (int round = 1; round <= kRounds; ++round) {
      for (int i = 0; i < kVariables; ++i) {
        VS_ASSERT_OK(client_->BatchUpdate(AssignAll(Name(i), Value(round, i))));
      }
    }
  }

  static constexpr int kVariables = 40;
  static constexpr int kRounds = 5;
  static std::string Name(int i) { return absl::StrCat("model/v", i); }
  static int64_t Value(int round, int i) { return round * 100 + i; }

  void Start() {
    VS_ASSERT_OK_AND_ASSIGN(
        server_, ServerProcess::Start(
                     dir_.path(), {absl::StrCat("--durability=", GetParam())}));
    client_ = Client::Connect(server_->address());
  }

  void Kill() {
    server_->process().Kill(SIGKILL);
    server_->process().Wait();
  }

  // The store's write-ahead logs, oldest first.
  std::vector<fs::path> Logs() {
    std::vector<fs::path> logs;
    for (const auto& entry : fs::directory_iterator(dir_.path())) {
      if (entry.path().extension() == ".log") logs.push_back(entry.path());
    }
    std::sort(logs.begin(), logs.end());  // same-width numbers
    return logs;
  }

  // Deletes `log` and expects a start to be refused, naming it, and to
  // leave the directory untouched.
  void ExpectRefusedWithoutLog(const fs::path& log) {
    fs::remove(log);
    ExpectStartRefusedUntouched(
        dir_.path(),
        HasSubstr("varscoped: DATA_LOSS: Opening data directory " +
                  dir_.path() + ": its write-ahead log " +
                  log.filename().string() +
                  " is missing (VARSCOPE-DURABLE lists it): the writes it "
                  "held are lost. The data directory is damaged"));
  }

  // Expects the server to hold every variable's last value.
  void ExpectEveryLastValue() {
    for (int i = 0; i < kVariables; ++i) {
      VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read(Name(i)));
      EXPECT_EQ(Elements(read.value), Elements(Filled(Value(kRounds, i))))
          << Name(i);
      EXPECT_EQ(read.version, kRounds + 1) << Name(i);
    }
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<Client> client_;
};

INSTANTIATE_TEST_SUITE_P(Durability, LogDamageTest,
                         ::testing::Values("wal", "sync"));

// RocksDB's default recovery replayed the log up to the damage, dropped the
// rest (20 of 40 values) and deleted the log.
TEST_P(LogDamageTest, DamageInTheMiddleIsRefused) {
  Kill();
  const fs::path log = Logs().back();
  const uintmax_t size = fs::file_size(log);
  ASSERT_GT(size, 3u * 32768) << "the middle is not in the last block";
  {
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    const std::streamoff middle = static_cast<std::streamoff>(size / 2);
    char bytes[8];
    file.seekg(middle);
    file.read(bytes, sizeof(bytes));
    for (char& byte : bytes) byte = static_cast<char>(~byte);
    file.seekp(middle);
    file.write(bytes, sizeof(bytes));
  }
  ExpectStartRefusedUntouched(
      dir_.path(),
      AllOf(HasSubstr("varscoped: DATA_LOSS: Opening data directory " +
                      dir_.path() + ": Corruption: checksum mismatch (" +
                      log.string() + ": dropping "),
            HasSubstr(" bytes; Corruption: checksum mismatch). The data "
                      "directory is damaged; varscoped does not serve it. "
                      "Restore a backup or checkpoint")));
}

// A kill in the middle of a write leaves its record cut short at the end of
// the log; that write was never acknowledged.
TEST_P(LogDamageTest, TornLastRecordIsDroppedAndEverythingBeforeItKept) {
  const fs::path log = Logs().back();
  const uintmax_t before = fs::file_size(log);
  VS_ASSERT_OK(client_->BatchUpdate(AssignAll(Name(0), 999)));
  const uintmax_t after = fs::file_size(log);
  Kill();
  ASSERT_GT(after, before + 2);
  fs::resize_file(log, (before + after) / 2);

  Start();
  ExpectEveryLastValue();
}

// A deleted log held writes that are in no other file.
TEST_P(LogDamageTest, DeletedLogIsRefused) {
  Kill();
  ExpectRefusedWithoutLog(Logs().back());
}

// After a restart the replayed log stays, closed, until its writes are
// flushed, next to the new one.
class OlderLogDamageTest : public LogDamageTest {
 protected:
  void SetUp() override {
    LogDamageTest::SetUp();
    Kill();
    Start();
    ExpectEveryLastValue();
    VS_ASSERT_OK(client_->BatchUpdate(AssignAll(Name(0), 999)));
    Kill();
    ASSERT_EQ(Logs().size(), 2u);
  }
};

INSTANTIATE_TEST_SUITE_P(Durability, OlderLogDamageTest,
                         ::testing::Values("wal", "sync"));

TEST_P(OlderLogDamageTest, DeletedOlderLogIsRefused) {
  ExpectRefusedWithoutLog(Logs().front());
}

// RocksDB takes a closed log cut short for one whose last write was torn.
TEST_P(OlderLogDamageTest, TruncatedOlderLogIsRefused) {
  const fs::path log = Logs().front();
  const uintmax_t size = fs::file_size(log);
  fs::resize_file(log, size / 2);
  ExpectStartRefusedUntouched(
      dir_.path(),
      HasSubstr(absl::StrCat(
          "varscoped: DATA_LOSS: Opening data directory ", dir_.path(),
          ": its write-ahead log ", log.filename().string(), " has ", size / 2,
          " bytes, but it was closed at ", size,
          " (VARSCOPE-DURABLE): the writes cut from it are lost. The data "
          "directory is damaged")));
}

}  // namespace
}  // namespace varscope
