// The RocksDB store behind varscoped: variable metadata in the `meta` column
// family, variable bytes in row-aligned chunks in the `data` column family,
// exactly-once records in the `applied` column family, the intents of steps
// split over shards in the default one. This is the one place
// that sees rocksdb::Status.
#ifndef VARSCOPE_SERVER_STORAGE_STORAGE_H_
#define VARSCOPE_SERVER_STORAGE_STORAGE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "varscope/v1/cluster.pb.h"
#include "varscope/v1/storage.pb.h"

namespace varscope::server {

struct StorageOptions {
  // fsync the write-ahead log before a write returns (group commit across
  // concurrent writers). Without it a write is in the WAL (the OS page
  // cache) before it returns: it survives a process crash, not power loss.
  // Server::Start sets it from the durability mode. Default: false.
  bool sync = false;
  // The RocksDB Env to use (fault-injection tests pass a wrapper).
  // Default: nullptr, meaning rocksdb::Env::Default().
  rocksdb::Env* env = nullptr;
  // The write-ahead log's size, about, at most: past it RocksDB flushes the
  // memtables that keep its oldest file alive (the metadata's, which sparse
  // updates no longer write), so a restart replays at most about this
  // much. Default: 128 MiB (four data memtables).
  int64_t max_log_bytes = int64_t{128} << 20;
};

// Writes that apply atomically through Storage::Write, in the order they were
// added. Thread-compatible.
class StorageBatch {
 public:
  // Writes the metadata record of `meta.info().name()`.
  void PutMeta(const v1::StoredVariable& meta);
  // The three below refer to `data`/`bytes` without copying them.
  // REQUIRES: those bytes stay valid and unchanged until Storage::Write of
  // this batch returns.
  //
  // Writes chunks [first_chunk, last_chunk) of `data`, the variable's whole
  // content laid out as `meta` says.
  void PutChunks(const v1::StoredVariable& meta, absl::string_view data,
                 int64_t first_chunk, int64_t last_chunk);
  // Writes chunk `index` of the variable `meta` describes.
  void PutChunk(const v1::StoredVariable& meta, int64_t index,
                absl::string_view bytes);
  // Writes the metadata, with the CRC-32C of every chunk, and every chunk.
  // Does not delete row records (see DeleteRows).
  void PutVariable(const v1::StoredVariable& meta, absl::string_view data);
  // Deletes the metadata, every chunk and every row record of `name`.
  void DeleteVariable(absl::string_view name);
  // Writes a row record of the variable `info` describes: `rows` holds
  // entries of an 8-byte little-endian row index followed by that row's
  // `row_bytes` bytes. A sparse update writes only the rows it touched this
  // way, not their chunks: LoadAll applies a variable's row records on top
  // of its chunks in the order they were written, and takes the last one's
  // `info` (version, update time) as the variable's. Storage::Write numbers
  // the record.
  void PutRows(const v1::VariableInfo& info, int64_t row_bytes,
               std::string rows);
  // Deletes every row record of `name` (with PutVariable: the chunks now
  // hold what they recorded).
  void DeleteRows(absl::string_view name);
  // Records that update `sequence` of client `client_id` was applied, with
  // its serialized result.
  void PutApplied(absl::string_view client_id, int64_t sequence,
                  absl::string_view result);
  // Deletes that record.
  void DeleteApplied(absl::string_view client_id, int64_t sequence);
  // Records the serialized v1::Intent of update `sequence` of client
  // `client_id` (a spanning step's other parts), or deletes it. Refers to
  // `intent` without copying it (as PutChunks: it must stay valid until
  // Storage::Write of this batch returns).
  void PutIntent(absl::string_view client_id, int64_t sequence,
                 absl::string_view intent);
  void DeleteIntent(absl::string_view client_id, int64_t sequence);
  // Writes, or deletes, the record `key` of the `embedding` column family
  // (embedding variables' rows; server/embedding/ lays out the keys).
  void PutEmbedding(std::string key, std::string value);
  void DeleteEmbedding(std::string key);
  // Deletes the embedding records in [begin, end).
  void DeleteEmbeddingRange(std::string begin, std::string end);

  bool empty() const { return ops_.empty(); }

 private:
  friend class Storage;
  // kDefault last: the others are the handles after the default one's.
  enum class Family { kMeta, kData, kApplied, kEmbedding, kDefault };
  enum class Kind { kPut, kDelete, kDeleteRange, kPutRows };
  struct Op {
    Kind kind;
    Family family;
    std::string key;
    // The value of a kPut when `borrowed` is unset; the limit of a
    // kDeleteRange; the record of a kPutRows (whose key is the variable's
    // name, numbered by Storage::Write).
    std::string value;
    std::optional<absl::string_view> borrowed;
  };
  std::vector<Op> ops_;
};

// What a copy of the store (a checkpoint or a backup) holds.
struct StoreSummary {
  // The last RocksDB sequence number it holds (0 when unknown).
  uint64_t sequence = 0;
  int64_t variables = 0;
  int64_t bytes = 0;
  // Every variable's version, by name.
  std::map<std::string, int64_t> versions;
  // A backup of a cluster's shard: the id of the consistent cut it is of
  // (the pause's id, the same in every shard's backup of one cluster
  // backup). Empty otherwise.
  std::string cut;
};

// A backup in a backup directory.
struct BackupSummary {
  uint32_t backup_id = 0;
  int64_t timestamp_seconds = 0;  // creation time, Unix seconds
  // Bytes of its files (some shared with other backups) and how many.
  int64_t size_bytes = 0;
  int64_t files = 0;
  // Bytes this backup added to the backup directory (its new files).
  int64_t added_bytes = 0;
  StoreSummary contents;
};

// A store restored from a backup or a checkpoint.
struct RestoredStore {
  // The backup restored; 0 for a checkpoint.
  uint32_t backup_id = 0;
  StoreSummary contents;
  // Its cluster identity (see Storage::ReadClusterIdentity); nullopt for a
  // store from before identities were recorded.
  std::optional<v1::ClusterIdentity> cluster;
};

// Thread-safe.
class Storage {
 public:
  // Opens the store in directory `path`, creating it if the directory is
  // missing or empty. A store that is damaged or not whole is refused before
  // RocksDB may change anything in the directory (RocksDB itself would drop
  // what follows a damaged write-ahead log record and delete the log, open a
  // store whose MANIFEST lost its tail as an older store and delete the newer
  // files, and open a store whose log is gone as an older one): returns
  // DATA_LOSS if a write-ahead log record is damaged (a torn last record of
  // a log, a write that never completed, is dropped), if a log, the
  // MANIFEST, a table file or the CURRENT file (while other files of the
  // store are there) is missing, if RocksDB finds the store damaged, or if
  // it holds less than it durably held before (VARSCOPE-DURABLE records the
  // last write sequence known to be in the table files, and the logs).
  // Returns UNAVAILABLE if another process holds the store,
  // FAILED_PRECONDITION if the directory holds other files but no store, and
  // the mapped RocksDB error otherwise.
  static absl::StatusOr<std::unique_ptr<Storage>> Open(
      const StorageOptions& options, std::string path);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  // Applies `batch` atomically; on return OK it is in the WAL (and fsynced
  // with options.sync). Errors: RESOURCE_EXHAUSTED when the disk is full,
  // UNAVAILABLE for other I/O errors; nothing of the batch is applied. After
  // a failed write, every write fails with the same error until Recover
  // succeeds.
  absl::Status Write(const StorageBatch& batch);

  // After a failed write: closes and reopens the store, which replays the
  // write-ahead log (into memory, so on a full disk writes resume as soon as
  // they fit). Tries at most once a second, and after a full disk only once
  // it has room for the write that failed; returns OK if the store takes
  // writes again (at once when no write failed), else the last try's error
  // (RESOURCE_EXHAUSTED while the disk is full). A write that failed may
  // still be in the replayed log: the caller rewrites what it touched.
  absl::Status Recover();

  // A stored variable as LoadAll assembles it.
  struct LoadedVariable {
    // Its metadata, with the `info` of its last row record if it has any.
    v1::StoredVariable meta;
    // Its bytes: its chunks with its row records applied.
    std::string data;
    // The bytes of its row records (0 if it has none).
    int64_t row_record_bytes = 0;
  };
  // Calls `fn` with every stored variable, in name order, after checking
  // every chunk's CRC-32C (and filling in the CRCs of records written
  // without them) and every row record's. Returns DATA_LOSS naming the
  // variable if a chunk is missing, extra, of the wrong size or fails its
  // checksum, if a row record fails its checksum or does not fit the
  // variable, or a record does not parse; returns the first error `fn`
  // returns.
  absl::Status LoadAll(const std::function<absl::Status(LoadedVariable)>& fn);

  // Calls `fn(client_id, sequence, result)` for every applied-update record
  // (see StorageBatch::PutApplied).
  absl::Status LoadApplied(
      const std::function<absl::Status(std::string, int64_t, std::string)>& fn);

  // Calls `fn(client_id, sequence, intent)` for every intent record (see
  // StorageBatch::PutIntent). DATA_LOSS for a damaged key.
  absl::Status LoadIntents(
      const std::function<absl::Status(std::string, int64_t, std::string)>& fn);

  // The cluster identity recorded in the store, nullopt if none is. It is a
  // record of the default column family, so checkpoints, backups and
  // restores carry it. DATA_LOSS if the record does not parse; the mapped
  // RocksDB error otherwise.
  absl::StatusOr<std::optional<v1::ClusterIdentity>> ReadClusterIdentity();

  // The embedding records `keys` (see StorageBatch::PutEmbedding) with one
  // RocksDB MultiGet: values[i] is nullopt for a missing key. Returns the
  // mapped RocksDB error of the first key that failed.
  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGetEmbedding(
      const std::vector<std::string>& keys);

  // Calls `fn(key, value)` for the embedding records in [begin, end) in key
  // order while it returns true. Returns the mapped RocksDB error.
  absl::Status ScanEmbedding(
      absl::string_view begin, absl::string_view end,
      const std::function<bool(absl::string_view, absl::string_view)>& fn);

  // Records `identity` (fsynced before it returns). Errors: the mapped
  // RocksDB error; nothing is recorded.
  absl::Status WriteClusterIdentity(const v1::ClusterIdentity& identity);

  // Moves every memtable into table files (so that a checkpoint taken next
  // has little to move).
  absl::Status FlushMemtables();

  // Writes a consistent, openable copy of the store into `dir` (a new
  // directory: hard links to the immutable files when on the same file
  // system, copies otherwise) and returns the last write sequence it holds,
  // exact if no write runs meanwhile. ALREADY_EXISTS if `dir` exists; the
  // mapped RocksDB error otherwise.
  absl::StatusOr<uint64_t> Checkpoint(const std::string& dir);

  // A directory on the store's file system for a checkpoint to back up
  // (removed, if left over, when the store opens).
  std::string StagingDirectory() const;

  // Adds a backup of the checkpoint `checkpoint_dir` (see Checkpoint; it is
  // removed) to the RocksDB backup directory `backup_dir` (created if
  // missing; files already there are shared, so backups are incremental),
  // recording `contents` (without versions; with its cut) with it, and
  // returns it.
  absl::StatusOr<BackupSummary> BackupCheckpoint(
      const std::string& checkpoint_dir, const std::string& backup_dir,
      const StoreSummary& contents);

  // Deletes the oldest backups in `backup_dir` so that the newest `keep`
  // remain, and returns the ids it deleted, oldest first. Each backup is
  // deleted whole (RocksDB deletes its metadata file before its files: a
  // backup is listed and restorable or gone; files an interrupted prune
  // leaves behind are deleted by the next one). INVALID_ARGUMENT if `keep`
  // is 0 (the newest backup is never deleted), NOT_FOUND if `backup_dir`
  // holds no backup, the mapped RocksDB error otherwise.
  static absl::StatusOr<std::vector<uint32_t>> PruneBackups(
      const std::string& backup_dir, uint32_t keep);

  // The backups in `backup_dir`, oldest first, with what they hold (without
  // versions). NOT_FOUND if it holds none.
  static absl::StatusOr<std::vector<BackupSummary>> ListBackups(
      const std::string& backup_dir);

  // Restores backup `backup_id` (0: the latest) of `backup_dir`, or the
  // checkpoint `backup_dir` (a directory with a CURRENT file), into the new
  // directory `data_dir` and checks that every variable loads. Returns what
  // it holds. FAILED_PRECONDITION if `data_dir` exists and is not empty;
  // NOT_FOUND if there is no such backup; DATA_LOSS if the restored store is
  // damaged. Leaves `data_dir` empty on error.
  static absl::StatusOr<RestoredStore> Restore(const std::string& backup_dir,
                                               uint32_t backup_id,
                                               const std::string& data_dir);

  // The number of chunks a variable of `total_bytes` has with `chunk_bytes`.
  static int64_t NumChunks(int64_t total_bytes, int64_t chunk_bytes);

  // The store's column families with their options (the benchmark writes
  // RocksDB directly with them).
  static std::vector<rocksdb::ColumnFamilyDescriptor> Families();

  // Figures for monitoring. Counts since Open are monotonic across reopens.
  struct Stats {
    // Bytes of write-ahead log that Open found (and RocksDB replayed).
    int64_t wal_replayed_bytes = 0;
    // RocksDB's statistics since Open.
    int64_t wal_written_bytes = 0;
    int64_t wal_syncs = 0;
    int64_t stall_micros = 0;
    int64_t compaction_read_bytes = 0;
    int64_t compaction_written_bytes = 0;
    int64_t memtable_flush_bytes = 0;
    // The store now; nullopt while it is being reopened (see Recover).
    struct Now {
      int64_t sst_bytes = 0;
      int64_t blob_bytes = 0;
      int64_t memtable_bytes = 0;
      int64_t pending_compaction_bytes = 0;
      int64_t running_compactions = 0;
      int64_t running_flushes = 0;
      bool write_stopped = false;
      // Bytes/s RocksDB slows writes down to; 0 when it does not.
      int64_t delayed_write_rate = 0;
    };
    std::optional<Now> now;
    // Failed writes by the absl::StatusCode they returned (index).
    std::vector<int64_t> write_errors;
  };
  // Never waits for a reopen. Thread-safe.
  Stats GetStats();

 private:
  Storage(const StorageOptions& options, std::string path);

  class Listener;

  // What VARSCOPE-DURABLE says about the store with RocksDB identity
  // `identity`.
  struct DurableRecord {
    std::string identity;
    // Every write up to this sequence is in the table files.
    uint64_t sequence = 0;
    // The write-ahead logs: the bytes of each closed one, by number (the
    // one being written has kOpenLog in storage.cc).
    std::map<uint64_t, uint64_t> logs;
  };

  // Opens the RocksDB store. REQUIRES: db_ is null.
  absl::Status OpenDb() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls `fn(client_id, sequence, value)` for the records keyed `prefix`,
  // client id, '\0', sequence of column family handles_[family]; DATA_LOSS
  // naming `what` for a damaged key.
  absl::Status LoadClientRecords(
      size_t family, absl::string_view prefix, absl::string_view what,
      const std::function<absl::Status(std::string, int64_t, std::string)>& fn)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the disk has room for the write that failed for want of space
  // (true if another error failed it): reopening before would only leave
  // one more log behind.
  bool HasRoomForFailedWrite() ABSL_LOCKS_EXCLUDED(error_mu_);
  // One try of Recover: reopens the store, or returns why not.
  absl::Status RecoverDb() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // UNAVAILABLE: another process holds the store (`status` says how).
  absl::Status InUseError(const rocksdb::Status& status) const;
  // Returns whether the directory holds a store (false if it is missing or
  // empty), after checking, read-only, that the store is whole (see Open).
  absl::StatusOr<bool> CheckStore();
  // Checks the store opened read-only in `db` against VARSCOPE-DURABLE.
  absl::Status CheckDurableRecord(rocksdb::DB& db);
  // Assembles variables [begin, end) of `vars`, whose metadata is read, (see
  // LoadAll).
  absl::Status LoadChunks(std::vector<LoadedVariable>& vars, size_t begin,
                          size_t end) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The key index of the next row record: kRowRecordBit (storage.cc) and a
  // number above every one written or loaded before (and at least the
  // time in microseconds, so that numbers grow across restarts too).
  uint64_t NextRowRecord();
  // Applies the row records that `it` is on (the first after the chunks of
  // `var`) to `var`.
  absl::Status ApplyRowRecords(rocksdb::Iterator& it, absl::string_view prefix,
                               LoadedVariable& var);
  // Closes it; when `clean`, first flushes every memtable and records the
  // durable sequence.
  void CloseDb(bool clean) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records that everything up to write `sequence` is in the table files.
  void RecordDurable(uint64_t sequence) ABSL_LOCKS_EXCLUDED(durable_mu_);
  // Records the write-ahead logs in the directory. Called before anything is
  // written into a new log.
  void RecordLogs() ABSL_LOCKS_EXCLUDED(durable_mu_);
  // Writes `record` to VARSCOPE-DURABLE and keeps it on success.
  void WriteDurableRecord(DurableRecord record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(durable_mu_);

  const StorageOptions options_;
  const std::string path_;
  rocksdb::WriteOptions write_options_;

  // Shared by every use of the database, exclusive to reopen it.
  absl::Mutex mu_;
  std::unique_ptr<rocksdb::DB> db_ ABSL_GUARDED_BY(mu_);
  // default, meta, data, applied, embedding.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_ ABSL_GUARDED_BY(mu_);
  // RocksDB's informational log, kept across reopens.
  std::shared_ptr<rocksdb::Logger> info_log_ ABSL_GUARDED_BY(mu_);
  // When Recover may try again after a failed try.
  absl::Time next_recovery_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Set by a failed write, cleared by Recover; `error_` is that write's
  // error.
  std::atomic<bool> failed_{false};
  absl::Mutex error_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::Status error_ ABSL_GUARDED_BY(error_mu_);
  // The bytes that write needed when it failed for want of space, else 0.
  uint64_t room_needed_ ABSL_GUARDED_BY(error_mu_) = 0;
  // RocksDB's statistics, kept across reopens.
  std::shared_ptr<rocksdb::Statistics> statistics_;
  int64_t wal_replayed_bytes_ = 0;
  // The number of the next row record (see PutRows): above every number
  // written before, whether or not this process loaded them.
  std::atomic<uint64_t> next_row_record_{0};
  // Failed writes by absl::StatusCode.
  std::atomic<int64_t> write_errors_[17] = {};
  // What VARSCOPE-DURABLE says (its identity is the open store's).
  absl::Mutex durable_mu_;
  DurableRecord durable_ ABSL_GUARDED_BY(durable_mu_);
};

// Sets the CRC-32C of chunks [first_chunk, last_chunk) of `data` (the
// variable's whole content) in `meta`, sized for every chunk.
void ChecksumChunks(absl::string_view data, int64_t first_chunk,
                    int64_t last_chunk, v1::StoredVariable& meta);

// The one mapping from rocksdb::Status to absl::Status. `context` starts the
// message.
absl::Status FromRocksStatus(const rocksdb::Status& status,
                             absl::string_view context);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_STORAGE_STORAGE_H_
