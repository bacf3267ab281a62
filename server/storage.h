// The RocksDB store behind varscoped: variable metadata in the `meta` column
// family, variable bytes in row-aligned chunks in the `data` column family.
// This is the one place that sees rocksdb::Status.
#ifndef VARSCOPE_SERVER_STORAGE_H_
#define VARSCOPE_SERVER_STORAGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "varscope/v1/storage.pb.h"

namespace varscope::server {

struct StorageOptions {
  // fsync the write-ahead log before a write returns (group commit across
  // concurrent writers). Without it a write is in the WAL (the OS page
  // cache) before it returns: it survives a process crash, not power loss.
  // Default: false.
  bool sync = false;
  // The RocksDB Env to use (fault-injection tests pass a wrapper).
  // Default: nullptr, meaning rocksdb::Env::Default().
  rocksdb::Env* env = nullptr;
};

// Writes that apply atomically through Storage::Write. Thread-compatible.
class StorageBatch {
 public:
  // Writes the metadata record of `meta.info().name()`.
  void PutMeta(const v1::StoredVariable& meta);
  // Writes chunks [first_chunk, last_chunk) of `data`, the variable's whole
  // content laid out as `meta` says.
  void PutChunks(const v1::StoredVariable& meta, absl::string_view data,
                 int64_t first_chunk, int64_t last_chunk);
  // Writes chunk `index` of the variable `meta` describes.
  void PutChunk(const v1::StoredVariable& meta, int64_t index,
                absl::string_view bytes);
  // Writes the metadata and every chunk.
  void PutVariable(const v1::StoredVariable& meta, absl::string_view data);
  // Deletes the metadata and every chunk of `name`.
  void DeleteVariable(absl::string_view name);
  // Records that update `sequence` of client `client_id` was applied, with
  // its serialized result, and forgets that client's records below
  // `forget_below`.
  void PutApplied(absl::string_view client_id, int64_t sequence,
                  absl::string_view result, int64_t forget_below);

 private:
  friend class Storage;
  rocksdb::WriteBatch batch_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* data_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* applied_cf_ = nullptr;
};

// Thread-safe.
class Storage {
 public:
  // Opens or creates the store in directory `path`. Returns UNAVAILABLE if
  // another process holds it, DATA_LOSS if RocksDB finds it corrupted, and
  // the mapped RocksDB error otherwise.
  static absl::StatusOr<std::unique_ptr<Storage>> Open(
      const StorageOptions& options, std::string path);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  // A batch bound to this store's column families.
  StorageBatch NewBatch() const;

  // Applies `batch` atomically; on return OK it is in the WAL (and fsynced
  // with options.sync). Errors: RESOURCE_EXHAUSTED when the disk is full,
  // UNAVAILABLE for other I/O errors; nothing of the batch is applied.
  absl::Status Write(StorageBatch& batch);

  // Calls `fn` with every stored variable's record and its assembled bytes,
  // in name order. Returns DATA_LOSS naming the variable if a chunk is
  // missing, extra or of the wrong size, or a record does not parse; returns
  // the first error `fn` returns.
  absl::Status LoadAll(
      const std::function<absl::Status(v1::StoredVariable, std::string)>& fn);

  // Calls `fn(client_id, sequence, result)` for every applied-update record
  // (see StorageBatch::PutApplied).
  absl::Status LoadApplied(
      const std::function<absl::Status(std::string, int64_t, std::string)>& fn);

  // The number of chunks a variable of `total_bytes` has with `chunk_bytes`.
  static int64_t NumChunks(int64_t total_bytes, int64_t chunk_bytes);

 private:
  Storage(std::unique_ptr<rocksdb::DB> db,
          std::vector<rocksdb::ColumnFamilyHandle*> handles, bool sync);

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, meta, data,
                                                       // applied
  rocksdb::WriteOptions write_options_;
};

// The one mapping from rocksdb::Status to absl::Status. `context` starts the
// message.
absl::Status FromRocksStatus(const rocksdb::Status& status,
                             absl::string_view context);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_STORAGE_H_
