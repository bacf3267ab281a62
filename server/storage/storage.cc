#include "server/storage/storage.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/internal/endian.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/crc32c.h"
#include "common/status.h"
#include "rocksdb/file_system.h"
#include "rocksdb/listener.h"
#include "rocksdb/options.h"
#include "rocksdb/statistics.h"
#include "rocksdb/write_batch.h"
#include "server/base/log.h"

namespace varscope::server {
namespace {

constexpr char kMetaFamily[] = "meta";
constexpr char kDataFamily[] = "data";
constexpr char kAppliedFamily[] = "applied";
constexpr char kEmbeddingFamily[] = "embedding";
// The memtable sizes (two at most) of the data and embedding families.
constexpr size_t kDataMemtableBytes = 32 << 20;
constexpr size_t kEmbeddingMemtableBytes = 16 << 20;
// Threads that load the store at start-up: more than cores, so that reads
// of some overlap the checksums, copies and page faults of others (4 loaded
// 1 GiB in 0.9 s where 2 took 1.2 s, on 2 cores, files in the page cache).
constexpr size_t kLoadThreads = 4;
// The key of the cluster identity in the default column family.
constexpr char kClusterIdentityKey[] = "cluster-identity";
// The keys of intents in the default column family start with this (then
// the client id, '\0' and the sequence, as applied-update keys).
constexpr char kIntentPrefix[] = "intent/";
// "IDENTITY\nSEQUENCE\nLOG:BYTES ... LOG\n": everything up to write SEQUENCE
// of the store with that RocksDB identity is in its table files, and its
// write-ahead logs were LOG.log, ... (RocksDB deletes a log only once
// everything in it is flushed), all but the newest closed at BYTES bytes.
// Stores written before logs were recorded have the first two lines only.
constexpr char kDurableFile[] = "VARSCOPE-DURABLE";
// The size recorded for the log RocksDB writes into.
constexpr uint64_t kOpenLog = ~uint64_t{0};
// A write-ahead log record may be torn only at the end of a log (a write
// that never completed, so never acknowledged); RocksDB's default
// (kPointInTimeRecovery) silently drops everything after any damaged record.
constexpr rocksdb::WALRecoveryMode kWalRecovery =
    rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
// How often Storage::Recover may try again: each try flushes the memtables.
constexpr absl::Duration kRecoveryInterval = absl::Seconds(1);

rocksdb::Slice ToSlice(absl::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

// Data keys are `name \0 chunk-index(8 bytes big-endian)`: '\0' never occurs
// in a valid name, so one variable's chunks are one contiguous key range.
// Applied-update keys are `client-id \0 sequence` alike.
std::string ChunkKey(absl::string_view name, uint64_t chunk) {
  std::string key;
  key.reserve(name.size() + 9);
  key.append(name.data(), name.size());
  key.push_back('\0');
  char index[8];
  absl::big_endian::Store64(index, chunk);
  key.append(index, 8);
  return key;
}

std::string ChunkPrefix(absl::string_view name) {
  std::string prefix(name);
  prefix.push_back('\0');
  return prefix;
}

// Row records (StorageBatch::PutRows) are keyed like chunks, with this bit
// set in the index and their number below it: they sort after the chunks,
// in the order they were written.
constexpr uint64_t kRowRecordBit = uint64_t{1} << 63;

// The first key of the row records of `name`.
std::string RowRecordPrefix(absl::string_view name) {
  std::string prefix = ChunkPrefix(name);
  prefix.push_back('\x80');
  return prefix;
}

// The first key after every chunk of `name`.
std::string ChunkLimit(absl::string_view name) {
  std::string limit(name);
  limit.push_back('\1');
  return limit;
}

// A write refused for want of space; `cause` says where it failed.
absl::Status NoSpaceError(absl::string_view path, absl::string_view cause) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "No space left on the disk of data directory ", path,
      ": the update was not applied; writes resume once space is freed (",
      cause, ")"));
}

// The error a failed write returns.
absl::Status WriteError(const rocksdb::Status& status, absl::string_view path) {
  if (status.IsNoSpace()) return NoSpaceError(path, status.ToString());
  if (status.IsIOError()) {
    return absl::UnavailableError(absl::StrCat(
        "I/O error writing data directory ", path,
        ": the update was not applied; writes resume once the disk works "
        "again (",
        status.ToString(), ")"));
  }
  return FromRocksStatus(status, absl::StrCat("Writing data directory ", path));
}

// Replaces `path` with `contents`, durably (write, fsync, rename, fsync the
// directory).
absl::Status ReplaceFile(const std::filesystem::path& path,
                         const std::string& contents) {
  const std::string temporary = path.string() + ".tmp";
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, "Creating " + temporary);
  const bool written = write(fd, contents.data(), contents.size()) ==
                           static_cast<ssize_t>(contents.size()) &&
                       fsync(fd) == 0;
  const int saved_errno = errno;
  close(fd);
  if (!written) {
    unlink(temporary.c_str());
    return absl::ErrnoToStatus(saved_errno, "Writing " + temporary);
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, "Renaming " + temporary);
  }
  const int dir = open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  return absl::OkStatus();
}

// Drops RocksDB's informational log.
class NoLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {}
};

// Keeps RocksDB's first warning, for the read-only check (whose log would
// otherwise rotate the store's LOG): RocksDB names a damaged log file there
// only ("DIR/000004.log: dropping 32768 bytes; Corruption: ...").
class FirstWarning final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {}
  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level < rocksdb::InfoLogLevel::WARN_LEVEL) return;
    char text[512];
    std::vsnprintf(text, sizeof(text), format, ap);
    absl::string_view warning = text;
    // Without RocksDB's "[source.cc:LINE] ".
    if (absl::StartsWith(warning, "[") && warning.find("] ") != warning.npos) {
      warning.remove_prefix(warning.find("] ") + 2);
    }
    absl::MutexLock l(&mu_);
    if (first_.empty()) first_ = std::string(warning);
  }
  std::string first() {
    absl::MutexLock l(&mu_);
    return first_;
  }

 private:
  absl::Mutex mu_;
  std::string first_ ABSL_GUARDED_BY(mu_);
};

// RocksDB's informational log, in the data directory's LOG file (the one
// before it renamed LOG.old.MICROS, as RocksDB does). RocksDB's own file
// logger asserts (an assertion Debian's build keeps) when it writes again
// after a failed write, so a full disk aborted the server: this one drops
// the lines that do not fit and goes on.
class InfoLog final : public rocksdb::Logger {
 public:
  static std::shared_ptr<rocksdb::Logger> Open(rocksdb::FileSystem& fs,
                                               const std::string& dir) {
    const std::string path = dir + "/LOG";
    rocksdb::IOOptions io;
    if (fs.FileExists(path, io, nullptr).ok()) {
      fs.RenameFile(
            path, absl::StrCat(path, ".old.", absl::ToUnixMicros(absl::Now())),
            io, nullptr)
          .PermitUncheckedError();
    }
    std::unique_ptr<rocksdb::FSWritableFile> file;
    if (!fs.NewWritableFile(path, rocksdb::FileOptions(), &file, nullptr)
             .ok()) {
      return std::make_shared<NoLogger>();
    }
    return std::make_shared<InfoLog>(std::move(file));
  }

  explicit InfoLog(std::unique_ptr<rocksdb::FSWritableFile> file)
      : file_(std::move(file)) {}

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    std::string line = absl::FormatTime("%Y/%m/%d-%H:%M:%E6S ", absl::Now(),
                                        absl::LocalTimeZone());
    absl::StrAppend(&line, static_cast<uint64_t>(pthread_self()), " ");
    va_list copy;
    va_copy(copy, ap);
    const int size = std::vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (size > 0) {
      const size_t start = line.size();
      line.resize(start + static_cast<size_t>(size) + 1);
      std::vsnprintf(line.data() + start, static_cast<size_t>(size) + 1, format,
                     ap);
      line.pop_back();  // vsnprintf's '\0'
    }
    if (line.back() != '\n') line.push_back('\n');
    absl::MutexLock l(&mu_);
    file_->Append(ToSlice(line), rocksdb::IOOptions(), nullptr)
        .PermitUncheckedError();
  }

 private:
  absl::Mutex mu_;
  const std::unique_ptr<rocksdb::FSWritableFile> file_ ABSL_PT_GUARDED_BY(mu_);
};

// The write-ahead logs (NUMBER.log) in `dir`: their sizes by number.
std::map<uint64_t, uint64_t> Logs(const std::string& dir) {
  std::map<uint64_t, uint64_t> logs;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    uint64_t number = 0;
    if (absl::EndsWith(name, ".log") &&
        absl::SimpleAtoi(absl::string_view(name).substr(0, name.size() - 4),
                         &number)) {
      logs[number] = entry.file_size(error);
    }
  }
  return logs;
}

// Whether the file named `name` belongs to a RocksDB store (or is ours).
bool IsStoreFile(absl::string_view name) {
  return name == "IDENTITY" || name == kDurableFile ||
         absl::StartsWith(name, "MANIFEST-") ||
         absl::StartsWith(name, "OPTIONS-") || absl::EndsWith(name, ".sst") ||
         absl::EndsWith(name, ".log") || absl::EndsWith(name, ".blob");
}

}  // namespace

class Storage::Listener final : public rocksdb::EventListener {
 public:
  explicit Listener(Storage* storage) : storage_(storage) {}

  void OnFlushCompleted(rocksdb::DB* db,
                        const rocksdb::FlushJobInfo& info) override {
    storage_->RecordDurable(info.largest_seqno);
  }

  // A sealed memtable comes with a new write-ahead log, and no write goes
  // into it before this returns.
  void OnMemTableSealed(const rocksdb::MemTableInfo& info) override {
    storage_->RecordLogs();
  }

  // RocksDB recovers from a full disk on its own only once the disk has as
  // much free space as its largest memtable (64 MiB); Storage::Recover
  // resumes at the next write instead, as soon as the flush fits.
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason,
                            rocksdb::Status error,
                            bool* auto_recovery) override {
    if (error.severity() >= rocksdb::Status::Severity::kHardError) {
      *auto_recovery = false;
    }
  }

 private:
  Storage* const storage_;
};

absl::Status FromRocksStatus(const rocksdb::Status& status,
                             absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", status.ToString());
  switch (status.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(message);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(message);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(message);
    case rocksdb::Status::kIOError:
      if (status.IsNoSpace()) return absl::ResourceExhaustedError(message);
      return absl::UnavailableError(message);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kShutdownInProgress:
      return absl::UnavailableError(message);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(message);
    default:
      return absl::InternalError(message);
  }
}

void StorageBatch::PutMeta(const v1::StoredVariable& meta) {
  ops_.push_back({Kind::kPut, Family::kMeta, meta.info().name(),
                  meta.SerializeAsString(), std::nullopt});
}

void StorageBatch::PutChunk(const v1::StoredVariable& meta, int64_t index,
                            absl::string_view bytes) {
  ops_.push_back({Kind::kPut, Family::kData,
                  ChunkKey(meta.info().name(), static_cast<uint64_t>(index)),
                  "", bytes});
}

void StorageBatch::PutChunks(const v1::StoredVariable& meta,
                             absl::string_view data, int64_t first_chunk,
                             int64_t last_chunk) {
  const int64_t chunk_bytes = meta.chunk_bytes();
  for (int64_t c = first_chunk; c < last_chunk; ++c) {
    const size_t begin = static_cast<size_t>(c * chunk_bytes);
    PutChunk(meta, c, data.substr(begin, static_cast<size_t>(chunk_bytes)));
  }
}

void StorageBatch::PutVariable(const v1::StoredVariable& meta,
                               absl::string_view data) {
  const int64_t chunks =
      Storage::NumChunks(static_cast<int64_t>(data.size()), meta.chunk_bytes());
  v1::StoredVariable checksummed = meta;
  ChecksumChunks(data, 0, chunks, checksummed);
  PutMeta(checksummed);
  PutChunks(meta, data, 0, chunks);
}

void StorageBatch::PutRows(const v1::VariableInfo& info, int64_t row_bytes,
                           std::string rows) {
  // CRC-32C (4 bytes), then the length of `info` (4), `info`, row_bytes (8)
  // and the rows; the CRC covers what follows it. Little-endian.
  const std::string serialized = info.SerializeAsString();
  std::string record(16 + serialized.size() + rows.size(), '\0');
  char* p = record.data() + 4;
  absl::little_endian::Store32(p, static_cast<uint32_t>(serialized.size()));
  memcpy(p + 4, serialized.data(), serialized.size());
  p += 4 + serialized.size();
  absl::little_endian::Store64(p, static_cast<uint64_t>(row_bytes));
  memcpy(p + 8, rows.data(), rows.size());
  absl::little_endian::Store32(record.data(),
                               Crc32c(absl::string_view(record).substr(4)));
  ops_.push_back({Kind::kPutRows, Family::kData, info.name(), std::move(record),
                  std::nullopt});
}

void StorageBatch::DeleteRows(absl::string_view name) {
  ops_.push_back({Kind::kDeleteRange, Family::kData, RowRecordPrefix(name),
                  ChunkLimit(name), std::nullopt});
}

void StorageBatch::DeleteVariable(absl::string_view name) {
  ops_.push_back(
      {Kind::kDelete, Family::kMeta, std::string(name), "", std::nullopt});
  ops_.push_back({Kind::kDeleteRange, Family::kData, ChunkPrefix(name),
                  ChunkLimit(name), std::nullopt});
}

void StorageBatch::PutApplied(absl::string_view client_id, int64_t sequence,
                              absl::string_view result) {
  ops_.push_back({Kind::kPut, Family::kApplied,
                  ChunkKey(client_id, static_cast<uint64_t>(sequence)),
                  std::string(result), std::nullopt});
}

void StorageBatch::DeleteApplied(absl::string_view client_id,
                                 int64_t sequence) {
  ops_.push_back({Kind::kDelete, Family::kApplied,
                  ChunkKey(client_id, static_cast<uint64_t>(sequence)), "",
                  std::nullopt});
}

void StorageBatch::PutIntent(absl::string_view client_id, int64_t sequence,
                             absl::string_view intent) {
  ops_.push_back(
      {Kind::kPut, Family::kDefault,
       absl::StrCat(kIntentPrefix,
                    ChunkKey(client_id, static_cast<uint64_t>(sequence))),
       "", intent});
}

void StorageBatch::DeleteIntent(absl::string_view client_id, int64_t sequence) {
  ops_.push_back(
      {Kind::kDelete, Family::kDefault,
       absl::StrCat(kIntentPrefix,
                    ChunkKey(client_id, static_cast<uint64_t>(sequence))),
       "", std::nullopt});
}

void StorageBatch::PutEmbedding(std::string key, std::string value) {
  ops_.push_back({Kind::kPut, Family::kEmbedding, std::move(key),
                  std::move(value), std::nullopt});
}

void StorageBatch::DeleteEmbedding(std::string key) {
  ops_.push_back(
      {Kind::kDelete, Family::kEmbedding, std::move(key), "", std::nullopt});
}

void StorageBatch::DeleteEmbeddingRange(std::string begin, std::string end) {
  ops_.push_back({Kind::kDeleteRange, Family::kEmbedding, std::move(begin),
                  std::move(end), std::nullopt});
}

int64_t Storage::NumChunks(int64_t total_bytes, int64_t chunk_bytes) {
  return (total_bytes + chunk_bytes - 1) / chunk_bytes;
}

Storage::Storage(const StorageOptions& options, std::string path)
    : options_(options), path_(std::move(path)) {
  write_options_.sync = options.sync;
}

absl::StatusOr<std::unique_ptr<Storage>> Storage::Open(
    const StorageOptions& options, std::string path) {
  std::unique_ptr<Storage> storage(new Storage(options, std::move(path)));
  std::error_code error;
  for (const auto& entry :
       std::filesystem::directory_iterator(storage->path_, error)) {
    if (absl::EndsWith(entry.path().filename().string(), ".log")) {
      storage->wal_replayed_bytes_ +=
          static_cast<int64_t>(entry.file_size(error));
    }
  }
  absl::MutexLock l(&storage->mu_);
  VS_RETURN_IF_ERROR(storage->OpenDb());
  return storage;
}

std::vector<rocksdb::ColumnFamilyDescriptor> Storage::Families() {
  rocksdb::ColumnFamilyOptions meta_options;
  meta_options.OptimizeForPointLookup(8);
  rocksdb::ColumnFamilyOptions data_options;
  data_options.OptimizeLevelStyleCompaction();
  // Variable chunks are large values that are rewritten often: keep them in
  // blob files so compaction does not copy them again and again.
  data_options.enable_blob_files = true;
  data_options.min_blob_size = 4096;
  data_options.enable_blob_garbage_collection = true;
  // The table holds every variable in memory already: memtables (which hold
  // whole values until a flush moves them into blob files) stay small.
  data_options.write_buffer_size = kDataMemtableBytes;
  data_options.max_write_buffer_number = 2;
  data_options.min_write_buffer_number_to_merge = 1;
  // Embedding rows beyond the server's memory budget live here; memtables
  // are memory the budget does not count, so they stay small too.
  rocksdb::ColumnFamilyOptions embedding_options;
  embedding_options.write_buffer_size = kEmbeddingMemtableBytes;
  embedding_options.max_write_buffer_number = 2;
  return {{rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
          {kMetaFamily, meta_options},
          {kDataFamily, data_options},
          {kAppliedFamily, rocksdb::ColumnFamilyOptions()},
          {kEmbeddingFamily, embedding_options}};
}

absl::Status Storage::OpenDb() {
  VS_ASSIGN_OR_RETURN(const bool exists, CheckStore());
  std::error_code error;
  // Left over by a backup that did not finish.
  if (exists) std::filesystem::remove_all(StagingDirectory(), error);
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = !exists;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.paranoid_checks = true;
  db_options.wal_recovery_mode = kWalRecovery;
  // The replayed log stays in the memtables (and the log on disk until they
  // are flushed): on a nearly full disk the store opens, and writes resume
  // after a failed one, as soon as they fit, not once the log fits in table
  // files too.
  db_options.avoid_flush_during_recovery = true;
  // A write-ahead log the MANIFEST knows of that is missing or short is an
  // error, not a silent loss.
  db_options.track_and_verify_wals_in_manifest = true;
  db_options.max_total_wal_size = static_cast<uint64_t>(options_.max_log_bytes);
  db_options.listeners.push_back(std::make_shared<Listener>(this));
  if (options_.env != nullptr) db_options.env = options_.env;
  if (info_log_ == nullptr) {
    rocksdb::FileSystem& fs = *db_options.env->GetFileSystem();
    fs.CreateDirIfMissing(path_, rocksdb::IOOptions(), nullptr)
        .PermitUncheckedError();
    info_log_ = InfoLog::Open(fs, path_);
  }
  db_options.info_log = info_log_;
  if (statistics_ == nullptr) statistics_ = rocksdb::CreateDBStatistics();
  db_options.statistics = statistics_;

  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, path_, Families(), &handles_, &raw_db);
  db_.reset(raw_db);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return InUseError(s);
    }
    return FromRocksStatus(s, absl::StrCat("Opening data directory ", path_));
  }
  std::string identity;
  db_->GetDbIdentity(identity).PermitUncheckedError();
  {
    absl::MutexLock d(&durable_mu_);
    if (identity != durable_.identity) durable_ = {std::move(identity)};
  }
  RecordLogs();
  return absl::OkStatus();
}

absl::Status Storage::InUseError(const rocksdb::Status& status) const {
  return absl::UnavailableError(
      absl::StrCat("Data directory ", path_,
                   " is in use by another process: ", status.ToString()));
}

absl::StatusOr<bool> Storage::CheckStore() {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::exists(fs::path(path_) / "CURRENT", error)) {
    bool other_files = false;
    for (const auto& entry : fs::directory_iterator(path_, error)) {
      const std::string name = entry.path().filename().string();
      if (IsStoreFile(name)) {
        return absl::DataLossError(
            absl::StrCat("Data directory ", path_,
                         " holds a store's files but its CURRENT file is "
                         "missing"));
      }
      other_files = true;
    }
    if (!other_files) return false;  // a new store
    return absl::FailedPreconditionError(absl::StrCat(
        "Data directory ", path_,
        " holds files but no store (its CURRENT file is missing): not "
        "starting on it, and not creating an empty store over it. Restore a "
        "backup or checkpoint into a new directory (varscope restore), or "
        "give an empty or new directory"));
  }
  rocksdb::DBOptions options;
  if (options_.env != nullptr) options.env = options_.env;
  // Another process writing the store would change it under the check.
  rocksdb::FileLock* lock = nullptr;
  rocksdb::Status s = options.env->LockFile(path_ + "/LOCK", &lock);
  if (!s.ok()) return InUseError(s);
  struct Unlock {
    rocksdb::Env* env;
    rocksdb::FileLock* lock;
    ~Unlock() { env->UnlockFile(lock).PermitUncheckedError(); }
  } unlock{options.env, lock};

  // Open it read-only as RocksDB will recover it, without deleting anything.
  options.wal_recovery_mode = kWalRecovery;
  options.track_and_verify_wals_in_manifest = true;  // as OpenDb, which
  // recorded the logs in the MANIFEST (a read-only open cannot unrecord them)
  auto warnings = std::make_shared<FirstWarning>();
  options.info_log = warnings;
  const std::string context = absl::StrCat("Opening data directory ", path_);
  std::vector<std::string> names;
  s = rocksdb::DB::ListColumnFamilies(options, path_, &names);
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) {
    families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  if (s.ok()) {
    s = rocksdb::DB::OpenForReadOnly(options, path_, families, &handles,
                                     &raw_db);
  }
  std::unique_ptr<rocksdb::DB> db(raw_db);
  if (s.IsPathNotFound()) {
    return absl::DataLossError(absl::StrCat(
        context, ": a file of the store is missing (", s.ToString(), ")"));
  }
  if (s.IsCorruption() && !warnings->first().empty()) {
    return absl::DataLossError(absl::StrCat(context, ": ", s.ToString(), " (",
                                            warnings->first(), ")"));
  }
  VS_RETURN_IF_ERROR(FromRocksStatus(s, context));
  absl::Status status = CheckDurableRecord(*db);
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  VS_RETURN_IF_ERROR(status);
  return true;
}

absl::Status Storage::CheckDurableRecord(rocksdb::DB& db) {
  std::ifstream in(std::filesystem::path(path_) / kDurableFile);
  DurableRecord record;
  std::string sequence_text, logs_text;
  if (!std::getline(in, record.identity) || !std::getline(in, sequence_text) ||
      !absl::SimpleAtoi(sequence_text, &record.sequence)) {
    return absl::OkStatus();  // nothing recorded (yet)
  }
  std::getline(in, logs_text);
  for (absl::string_view text : absl::StrSplit(logs_text, ' ')) {
    std::pair<absl::string_view, absl::string_view> log =
        absl::StrSplit(text, absl::MaxSplits(':', 1));
    uint64_t number = 0;
    uint64_t bytes = kOpenLog;
    if (absl::SimpleAtoi(log.first, &number) &&
        (log.second.empty() || absl::SimpleAtoi(log.second, &bytes))) {
      record.logs[number] = bytes;
    }
  }
  std::string identity;
  db.GetDbIdentity(identity).PermitUncheckedError();
  if (identity != record.identity) return absl::OkStatus();
  const std::string context = absl::StrCat("Opening data directory ", path_);
  const uint64_t recovered = db.GetLatestSequenceNumber();
  if (recovered < record.sequence) {
    return absl::DataLossError(absl::StrCat(
        context, ": it recovers writes up to sequence ", recovered,
        ", but writes up to sequence ", record.sequence,
        " were in its table files before (", kDurableFile,
        "): its MANIFEST or table files were truncated, replaced or lost"));
  }
  // RocksDB deletes only the logs before this one (all flushed).
  uint64_t first_kept = 0;
  db.GetIntProperty(rocksdb::DB::Properties::kMinLogNumberToKeep, &first_kept);
  const std::map<uint64_t, uint64_t> present = Logs(path_);
  for (const auto& [number, bytes] : record.logs) {
    if (number < first_kept) continue;
    auto it = present.find(number);
    const std::string log =
        absl::StrFormat("%s: its write-ahead log %06d.log", context, number);
    if (it == present.end()) {
      return absl::DataLossError(
          absl::StrCat(log, " is missing (", kDurableFile,
                       " lists it): the writes it held are lost"));
    }
    if (bytes != kOpenLog && it->second < bytes) {
      return absl::DataLossError(absl::StrCat(
          log, " has ", it->second, " bytes, but it was closed at ", bytes,
          " (", kDurableFile, "): the writes cut from it are lost"));
    }
  }
  {
    // Keep what was recorded when this store is opened next.
    absl::MutexLock d(&durable_mu_);
    if (durable_.identity != identity) durable_ = std::move(record);
  }
  return absl::OkStatus();
}

void Storage::RecordDurable(uint64_t sequence) {
  absl::MutexLock d(&durable_mu_);
  if (sequence <= durable_.sequence || durable_.identity.empty()) return;
  DurableRecord record = durable_;
  record.sequence = sequence;
  WriteDurableRecord(std::move(record));
}

void Storage::RecordLogs() {
  std::map<uint64_t, uint64_t> logs = Logs(path_);
  // RocksDB appends only to the newest log.
  if (!logs.empty()) logs.rbegin()->second = kOpenLog;
  absl::MutexLock d(&durable_mu_);
  if (logs == durable_.logs || durable_.identity.empty()) return;
  DurableRecord record = durable_;
  record.logs = std::move(logs);
  WriteDurableRecord(std::move(record));
}

void Storage::WriteDurableRecord(DurableRecord record) {
  std::vector<std::string> logs;
  for (const auto& [number, bytes] : record.logs) {
    logs.push_back(bytes == kOpenLog ? absl::StrCat(number)
                                     : absl::StrCat(number, ":", bytes));
  }
  if (ReplaceFile(std::filesystem::path(path_) / kDurableFile,
                  absl::StrCat(record.identity, "\n", record.sequence, "\n",
                               absl::StrJoin(logs, " "), "\n"))
          .ok()) {
    durable_ = std::move(record);
  }
}

void Storage::CloseDb(bool clean) {
  if (clean) {
    // Everything goes into the table files: the next start replays no log,
    // and the whole store is known to be there.
    rocksdb::FlushOptions flush;
    const uint64_t sequence = db_->GetLatestSequenceNumber();
    if (db_->Flush(flush, handles_).ok()) RecordDurable(sequence);
  }
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  handles_.clear();
  db_->Close().PermitUncheckedError();
  db_.reset();
}

Storage::~Storage() {
  absl::MutexLock l(&mu_);
  if (db_ != nullptr) CloseDb(/*clean=*/true);
}

absl::Status Storage::Write(const StorageBatch& batch) {
  if (failed_.load()) {
    absl::MutexLock e(&error_mu_);
    write_errors_[static_cast<int>(error_.code())].fetch_add(1);
    return error_;
  }
  absl::ReaderMutexLock l(&mu_);
  rocksdb::WriteBatch write_batch;
  rocksdb::Status s;
  for (const StorageBatch::Op& op : batch.ops_) {
    if (!s.ok()) break;
    rocksdb::ColumnFamilyHandle* family =
        op.family == StorageBatch::Family::kDefault
            ? handles_[0]
            : handles_[static_cast<size_t>(op.family) + 1];
    switch (op.kind) {
      case StorageBatch::Kind::kPut:
        s = write_batch.Put(family, op.key,
                            ToSlice(op.borrowed.value_or(op.value)));
        break;
      case StorageBatch::Kind::kDelete:
        s = write_batch.Delete(family, op.key);
        break;
      case StorageBatch::Kind::kDeleteRange:
        s = write_batch.DeleteRange(family, op.key, op.value);
        break;
      case StorageBatch::Kind::kPutRows:
        s = write_batch.Put(family, ChunkKey(op.key, NextRowRecord()),
                            op.value);
        break;
    }
  }
  if (!s.ok()) return FromRocksStatus(s, "Building a store write");
  s = db_->Write(write_options_, &write_batch);
  if (s.ok()) return absl::OkStatus();
  absl::Status error = WriteError(s, path_);
  write_errors_[static_cast<int>(error.code())].fetch_add(1);
  absl::MutexLock e(&error_mu_);
  if (!failed_.exchange(true)) {
    error_ = error;
    room_needed_ = s.IsNoSpace() ? write_batch.GetDataSize() : 0;
    log::Log(log::Level::kError, "store_error",
             {{"code", absl::StatusCodeToString(error.code())},
              {"error", error.message()}});
  }
  return error;
}

absl::Status Storage::Recover() {
  if (!failed_.load()) return absl::OkStatus();
  absl::MutexLock l(&mu_);
  if (!failed_.load()) return absl::OkStatus();
  if (absl::Now() >= next_recovery_ && HasRoomForFailedWrite()) {
    const absl::Status status = RecoverDb();
    if (status.ok()) {
      failed_.store(false);
      log::Log(log::Level::kInfo, "store_recovered", {});
      return absl::OkStatus();
    }
    next_recovery_ = absl::Now() + kRecoveryInterval;
    absl::MutexLock e(&error_mu_);
    error_ = status;
  }
  absl::MutexLock e(&error_mu_);
  return error_;
}

bool Storage::HasRoomForFailedWrite() {
  uint64_t needed = 0;
  {
    absl::MutexLock e(&error_mu_);
    needed = room_needed_;
  }
  rocksdb::Env* env =
      options_.env != nullptr ? options_.env : rocksdb::Env::Default();
  uint64_t free = 0;
  return needed == 0 || !env->GetFreeSpace(path_, &free).ok() || free >= needed;
}

absl::Status Storage::RecoverDb() {
  // Reopen rather than DB::Resume: RocksDB does not resume after an I/O
  // error writing the log, and resumes by flushing every memtable, which
  // needs room on a full disk.
  if (db_ != nullptr) CloseDb(/*clean=*/false);
  const absl::Status status = OpenDb();
  if (status.ok()) return status;
  if (db_ != nullptr) CloseDb(/*clean=*/false);
  if (absl::IsResourceExhausted(status)) {
    return NoSpaceError(path_, status.message());
  }
  return absl::Status(
      status.code(),
      absl::StrCat("Data directory ", path_,
                   ": the update was not applied; the store is closed after a "
                   "write error and reopening it failed: ",
                   status.message()));
}

absl::StatusOr<std::optional<v1::ClusterIdentity>>
Storage::ReadClusterIdentity() {
  absl::ReaderMutexLock l(&mu_);
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[0],
                                     kClusterIdentityKey, &value);
  if (s.IsNotFound()) return std::nullopt;
  VS_RETURN_IF_ERROR(FromRocksStatus(
      s,
      absl::StrCat("Reading the cluster identity in data directory ", path_)));
  v1::ClusterIdentity identity;
  if (!identity.ParseFromString(value)) {
    return absl::DataLossError(
        absl::StrCat("The cluster identity recorded in data directory ", path_,
                     " is damaged"));
  }
  return identity;
}

absl::Status Storage::WriteClusterIdentity(
    const v1::ClusterIdentity& identity) {
  absl::ReaderMutexLock l(&mu_);
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocksStatus(
      db_->Put(options, handles_[0], kClusterIdentityKey,
               identity.SerializeAsString()),
      absl::StrCat("Recording the cluster identity in data directory ", path_));
}

absl::StatusOr<std::vector<std::optional<std::string>>>
Storage::MultiGetEmbedding(const std::vector<std::string>& keys) {
  absl::ReaderMutexLock l(&mu_);
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->MultiGet(rocksdb::ReadOptions(), handles_[4], keys.size(), slices.data(),
                values.data(), statuses.data());
  std::vector<std::optional<std::string>> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    VS_RETURN_IF_ERROR(FromRocksStatus(statuses[i], "Reading the store"));
    out[i] = values[i].ToString();
  }
  return out;
}

absl::Status Storage::ScanEmbedding(
    absl::string_view begin, absl::string_view end,
    const std::function<bool(absl::string_view, absl::string_view)>& fn) {
  absl::ReaderMutexLock l(&mu_);
  rocksdb::ReadOptions options;
  options.fill_cache = false;
  const rocksdb::Slice limit(end.data(), end.size());
  options.iterate_upper_bound = &limit;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, handles_[4]));
  for (it->Seek(rocksdb::Slice(begin.data(), begin.size())); it->Valid();
       it->Next()) {
    if (!fn(absl::string_view(it->key().data(), it->key().size()),
            absl::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocksStatus(it->status(), "Reading the store");
}

absl::Status Storage::LoadClientRecords(
    size_t family, absl::string_view prefix, absl::string_view what,
    const std::function<absl::Status(std::string, int64_t, std::string)>& fn) {
  absl::ReaderMutexLock l(&mu_);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[family]));
  for (it->Seek(ToSlice(prefix));
       it->Valid() && it->key().starts_with(ToSlice(prefix)); it->Next()) {
    rocksdb::Slice key = it->key();
    key.remove_prefix(prefix.size());
    if (key.size() < 9 || key[key.size() - 9] != '\0') {
      return absl::DataLossError(absl::StrCat(what, " has a damaged key"));
    }
    VS_RETURN_IF_ERROR(fn(std::string(key.data(), key.size() - 9),
                          static_cast<int64_t>(absl::big_endian::Load64(
                              key.data() + key.size() - 8)),
                          it->value().ToString()));
  }
  return FromRocksStatus(it->status(), "Reading the store");
}

absl::Status Storage::LoadApplied(
    const std::function<absl::Status(std::string, int64_t, std::string)>& fn) {
  return LoadClientRecords(3, "", "An applied-update record", fn);
}

absl::Status Storage::LoadIntents(
    const std::function<absl::Status(std::string, int64_t, std::string)>& fn) {
  return LoadClientRecords(0, kIntentPrefix, "An intent record", fn);
}

absl::Status Storage::LoadAll(
    const std::function<absl::Status(LoadedVariable)>& fn) {
  absl::ReaderMutexLock l(&mu_);
  rocksdb::ReadOptions read_options;
  read_options.fill_cache = false;
  std::vector<LoadedVariable> vars;
  int64_t total_bytes = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(read_options, handles_[1]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string name = it->key().ToString();
      v1::StoredVariable& meta = vars.emplace_back().meta;
      if (!meta.ParseFromArray(it->value().data(),
                               static_cast<int>(it->value().size())) ||
          meta.info().name() != name || meta.chunk_bytes() <= 0 ||
          meta.info().byte_size() < 0) {
        return absl::DataLossError(
            absl::StrCat("Stored variable '", name,
                         "' is damaged: its metadata is corrupt"));
      }
      total_bytes += meta.info().byte_size();
    }
    VS_RETURN_IF_ERROR(FromRocksStatus(
        it->status(),
        absl::StrCat("Reading variable metadata in data directory ", path_)));
  }
  // The chunks of several variables at once: checksums, copies and page
  // faults of a large store take more CPU than its reads take the disk.
  const size_t threads = kLoadThreads;
  std::vector<absl::Status> errors(threads);
  std::vector<std::thread> loaders;
  size_t begin = 0;
  int64_t bytes = 0;
  for (size_t t = 0; t < threads && begin < vars.size(); ++t) {
    // Contiguous variables of about total / threads bytes.
    size_t end = begin;
    while (end < vars.size() &&
           (t + 1 == threads || bytes < total_bytes /
                                            static_cast<int64_t>(threads) *
                                            static_cast<int64_t>(t + 1))) {
      bytes += vars[end++].meta.info().byte_size();
    }
    loaders.emplace_back([&, t, begin, end]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      errors[t] = LoadChunks(vars, begin, end);
    });
    begin = end;
  }
  for (std::thread& loader : loaders) loader.join();
  for (const absl::Status& error : errors) VS_RETURN_IF_ERROR(error);
  for (LoadedVariable& var : vars) VS_RETURN_IF_ERROR(fn(std::move(var)));
  return absl::OkStatus();
}

absl::Status Storage::LoadChunks(std::vector<LoadedVariable>& vars,
                                 size_t begin, size_t end) {
  // Chunks with CRCs in their record are checked here, at hardware speed;
  // the others by RocksDB.
  rocksdb::ReadOptions ours;
  ours.fill_cache = false;
  ours.verify_checksums = false;
  rocksdb::ReadOptions rocksdbs;
  rocksdbs.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> unverified(
      db_->NewIterator(ours, handles_[2]));
  std::unique_ptr<rocksdb::Iterator> verified(
      db_->NewIterator(rocksdbs, handles_[2]));
  for (size_t i = begin; i < end; ++i) {
    v1::StoredVariable& meta = vars[i].meta;
    const std::string& name = meta.info().name();
    const int64_t total = meta.info().byte_size();
    const int64_t chunks = NumChunks(total, meta.chunk_bytes());
    const bool checksummed = meta.chunk_crc32c_size() == chunks;
    rocksdb::Iterator* it = checksummed ? unverified.get() : verified.get();
    std::string& bytes = vars[i].data;
    bytes.reserve(static_cast<size_t>(total));  // appended, not zeroed first
    const std::string prefix = ChunkPrefix(name);
    int64_t expected = 0;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      const rocksdb::Slice key = it->key();
      const bool indexed = key.size() == prefix.size() + 8;
      if (indexed && (key[prefix.size()] & 0x80) != 0) break;  // row records
      const int64_t index =
          indexed ? static_cast<int64_t>(
                        absl::big_endian::Load64(key.data() + prefix.size()))
                  : -1;
      if (index > expected && index < chunks) {
        return absl::DataLossError(
            absl::StrCat("Stored variable '", name, "' is damaged: chunk ",
                         expected, " of ", chunks, " is missing"));
      }
      if (index != expected || expected >= chunks) {
        return absl::DataLossError(
            absl::StrCat("Stored variable '", name,
                         "' is damaged: unexpected chunk key "
                         "after chunk ",
                         expected - 1, " of ", chunks));
      }
      const absl::string_view value(it->value().data(), it->value().size());
      const int64_t want =
          std::min(meta.chunk_bytes(), total - expected * meta.chunk_bytes());
      if (static_cast<int64_t>(value.size()) != want) {
        return absl::DataLossError(absl::StrCat(
            "Stored variable '", name, "' is damaged: chunk ", expected,
            " has ", value.size(), " bytes, expected ", want));
      }
      if (checksummed &&
          Crc32c(value) != meta.chunk_crc32c(static_cast<int>(expected))) {
        return absl::DataLossError(
            absl::StrCat("Stored variable '", name, "' is damaged: chunk ",
                         expected, " of ", chunks, " fails its checksum"));
      }
      bytes.append(value.data(), value.size());
      ++expected;
    }
    VS_RETURN_IF_ERROR(FromRocksStatus(
        it->status(), absl::StrCat("Reading stored variable '", name,
                                   "' in data directory ", path_)));
    if (expected != chunks) {
      return absl::DataLossError(absl::StrCat("Stored variable '", name,
                                              "' is damaged: chunk ", expected,
                                              " of ", chunks, " is missing"));
    }
    if (!checksummed) ChecksumChunks(bytes, 0, chunks, meta);
    VS_RETURN_IF_ERROR(ApplyRowRecords(*it, prefix, vars[i]));
  }
  return absl::OkStatus();
}

uint64_t Storage::NextRowRecord() {
  const uint64_t now = static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  uint64_t next = next_row_record_.load();
  while (
      !next_row_record_.compare_exchange_weak(next, std::max(next, now) + 1)) {
  }
  return kRowRecordBit | std::max(next, now);
}

absl::Status Storage::ApplyRowRecords(rocksdb::Iterator& it,
                                      absl::string_view prefix,
                                      LoadedVariable& var) {
  const v1::VariableInfo& info = var.meta.info();
  const std::string name = info.name();
  const int64_t total = info.byte_size();
  const int64_t rows = info.shape().dims().empty() ? 1 : info.shape().dims(0);
  const int64_t row_bytes = rows == 0 ? 0 : total / rows;
  auto damaged = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(
        "Stored variable '", name, "' is damaged: a row record ", what));
  };
  for (; it.Valid() && it.key().starts_with(ToSlice(prefix)); it.Next()) {
    const rocksdb::Slice key = it.key();
    if (key.size() != prefix.size() + 8 || (key[prefix.size()] & 0x80) == 0) {
      return damaged("has a bad key");
    }
    const uint64_t number =
        absl::big_endian::Load64(key.data() + prefix.size()) & ~kRowRecordBit;
    uint64_t next = next_row_record_.load();
    while (next <= number &&
           !next_row_record_.compare_exchange_weak(next, number + 1)) {
    }
    const absl::string_view record(it.value().data(), it.value().size());
    if (record.size() < 16 || absl::little_endian::Load32(record.data()) !=
                                  Crc32c(record.substr(4))) {
      return damaged("fails its checksum");
    }
    const size_t info_size = absl::little_endian::Load32(record.data() + 4);
    v1::VariableInfo recorded;
    if (info_size > record.size() - 16 ||
        !recorded.ParseFromArray(record.data() + 8,
                                 static_cast<int>(info_size)) ||
        recorded.name() != name || recorded.dtype() != info.dtype() ||
        recorded.byte_size() != total ||
        recorded.shape().SerializeAsString() !=
            info.shape().SerializeAsString()) {
      return damaged("does not describe the variable");
    }
    const absl::string_view entries = record.substr(16 + info_size);
    const int64_t entry_bytes = 8 + row_bytes;
    if (static_cast<int64_t>(absl::little_endian::Load64(
            record.data() + 8 + info_size)) != row_bytes ||
        static_cast<int64_t>(entries.size()) % entry_bytes != 0) {
      return damaged("does not fit the variable's rows");
    }
    for (size_t at = 0; at < entries.size();
         at += static_cast<size_t>(entry_bytes)) {
      const uint64_t row = absl::little_endian::Load64(entries.data() + at);
      if (row >= static_cast<uint64_t>(rows)) {
        return damaged("names a row past the variable's");
      }
      memcpy(var.data.data() + row * static_cast<uint64_t>(row_bytes),
             entries.data() + at + 8, static_cast<size_t>(row_bytes));
    }
    *var.meta.mutable_info() = std::move(recorded);
    var.row_record_bytes += static_cast<int64_t>(record.size());
  }
  return FromRocksStatus(it.status(),
                         absl::StrCat("Reading stored variable '", name,
                                      "' in data directory ", path_));
}

void ChecksumChunks(absl::string_view data, int64_t first_chunk,
                    int64_t last_chunk, v1::StoredVariable& meta) {
  const int64_t chunk_bytes = meta.chunk_bytes();
  const int chunks = static_cast<int>(
      Storage::NumChunks(static_cast<int64_t>(data.size()), chunk_bytes));
  meta.mutable_chunk_crc32c()->Resize(chunks, 0);
  for (int64_t c = first_chunk; c < last_chunk; ++c) {
    meta.set_chunk_crc32c(
        static_cast<int>(c),
        Crc32c(data.substr(static_cast<size_t>(c * chunk_bytes),
                           static_cast<size_t>(chunk_bytes))));
  }
}

Storage::Stats Storage::GetStats() {
  Stats stats;
  stats.wal_replayed_bytes = wal_replayed_bytes_;
  for (const std::atomic<int64_t>& errors : write_errors_) {
    stats.write_errors.push_back(errors.load());
  }
  if (!mu_.ReaderTryLock()) return stats;  // reopening: no waiting
  if (statistics_ != nullptr) {
    auto ticker = [&](uint32_t type) {
      return static_cast<int64_t>(statistics_->getTickerCount(type));
    };
    stats.wal_written_bytes = ticker(rocksdb::WAL_FILE_BYTES);
    stats.wal_syncs = ticker(rocksdb::WAL_FILE_SYNCED);
    stats.stall_micros = ticker(rocksdb::STALL_MICROS);
    stats.compaction_read_bytes = ticker(rocksdb::COMPACT_READ_BYTES);
    stats.compaction_written_bytes = ticker(rocksdb::COMPACT_WRITE_BYTES);
    stats.memtable_flush_bytes = ticker(rocksdb::FLUSH_WRITE_BYTES);
  }
  if (db_ != nullptr) {
    using P = rocksdb::DB::Properties;
    // A property summed over the column families, or of the whole store.
    auto property = [&](const std::string& name, bool summed) {
      uint64_t value = 0;
      if (summed) {
        db_->GetAggregatedIntProperty(name, &value);
      } else {
        db_->GetIntProperty(name, &value);
      }
      return static_cast<int64_t>(value);
    };
    auto total = [&](const std::string& name) { return property(name, true); };
    auto db_wide = [&](const std::string& name) {
      return property(name, false);
    };
    Stats::Now& now = stats.now.emplace();
    now.sst_bytes = total(P::kTotalSstFilesSize);
    now.blob_bytes = total(P::kTotalBlobFileSize);
    now.memtable_bytes = total(P::kCurSizeAllMemTables);
    now.pending_compaction_bytes = total(P::kEstimatePendingCompactionBytes);
    now.running_compactions = db_wide(P::kNumRunningCompactions);
    now.running_flushes = db_wide(P::kNumRunningFlushes);
    now.write_stopped = db_wide(P::kIsWriteStopped) != 0;
    now.delayed_write_rate = db_wide(P::kActualDelayedWriteRate);
  }
  mu_.ReaderUnlock();
  return stats;
}

}  // namespace varscope::server
