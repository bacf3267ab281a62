#include "server/storage.h"

#include <utility>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "rocksdb/options.h"

namespace varscope::server {
namespace {

constexpr char kMetaFamily[] = "meta";
constexpr char kDataFamily[] = "data";
constexpr char kAppliedFamily[] = "applied";

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

// The first key after every chunk of `name`.
std::string ChunkLimit(absl::string_view name) {
  std::string limit(name);
  limit.push_back('\1');
  return limit;
}

}  // namespace

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
  batch_.Put(meta_cf_, meta.info().name(), meta.SerializeAsString());
}

void StorageBatch::PutChunk(const v1::StoredVariable& meta, int64_t index,
                            absl::string_view bytes) {
  batch_.Put(data_cf_, ChunkKey(meta.info().name(), index), ToSlice(bytes));
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
  PutMeta(meta);
  PutChunks(meta, data, 0,
            Storage::NumChunks(static_cast<int64_t>(data.size()),
                               meta.chunk_bytes()));
}

void StorageBatch::DeleteVariable(absl::string_view name) {
  batch_.Delete(meta_cf_, ToSlice(name));
  batch_.DeleteRange(data_cf_, ChunkPrefix(name), ChunkLimit(name));
}

void StorageBatch::PutApplied(absl::string_view client_id, int64_t sequence,
                              absl::string_view result, int64_t forget_below) {
  batch_.Put(applied_cf_, ChunkKey(client_id, static_cast<uint64_t>(sequence)),
             ToSlice(result));
  if (forget_below > 0) {
    batch_.DeleteRange(
        applied_cf_, ChunkKey(client_id, 0),
        ChunkKey(client_id, static_cast<uint64_t>(forget_below)));
  }
}

absl::Status Storage::LoadApplied(
    const std::function<absl::Status(std::string, int64_t, std::string)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[3]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (key.size() < 9 || key[key.size() - 9] != '\0') {
      return absl::DataLossError("An applied-update record has a damaged key");
    }
    VS_RETURN_IF_ERROR(fn(std::string(key.data(), key.size() - 9),
                          static_cast<int64_t>(absl::big_endian::Load64(
                              key.data() + key.size() - 8)),
                          it->value().ToString()));
  }
  return FromRocksStatus(it->status(), "Reading the store");
}

int64_t Storage::NumChunks(int64_t total_bytes, int64_t chunk_bytes) {
  return (total_bytes + chunk_bytes - 1) / chunk_bytes;
}

absl::StatusOr<std::unique_ptr<Storage>> Storage::Open(
    const StorageOptions& options, std::string path) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.paranoid_checks = true;
  if (options.env != nullptr) db_options.env = options.env;

  rocksdb::ColumnFamilyOptions meta_options;
  meta_options.OptimizeForPointLookup(8);
  rocksdb::ColumnFamilyOptions data_options;
  data_options.OptimizeLevelStyleCompaction();
  // Variable chunks are large values that are rewritten often: keep them in
  // blob files so compaction does not copy them again and again.
  data_options.enable_blob_files = true;
  data_options.min_blob_size = 4096;
  data_options.enable_blob_garbage_collection = true;

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kMetaFamily, meta_options},
      {kDataFamily, data_options},
      {kAppliedFamily, rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, path, families, &handles, &raw_db);
  std::unique_ptr<rocksdb::DB> db(raw_db);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return absl::UnavailableError(
          absl::StrCat("Data directory ", path,
                       " is in use by another process: ", s.ToString()));
    }
    return FromRocksStatus(s, absl::StrCat("Opening data directory ", path));
  }
  return std::unique_ptr<Storage>(
      new Storage(std::move(db), std::move(handles), options.sync));
}

Storage::Storage(std::unique_ptr<rocksdb::DB> db,
                 std::vector<rocksdb::ColumnFamilyHandle*> handles, bool sync)
    : db_(std::move(db)), handles_(std::move(handles)) {
  write_options_.sync = sync;
}

Storage::~Storage() {
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  rocksdb::Status s = db_->Close();
  s.PermitUncheckedError();
}

StorageBatch Storage::NewBatch() const {
  StorageBatch batch;
  batch.meta_cf_ = handles_[1];
  batch.data_cf_ = handles_[2];
  batch.applied_cf_ = handles_[3];
  return batch;
}

absl::Status Storage::Write(StorageBatch& batch) {
  return FromRocksStatus(db_->Write(write_options_, &batch.batch_),
                         "Writing to the store");
}

absl::Status Storage::LoadAll(
    const std::function<absl::Status(v1::StoredVariable, std::string)>& fn) {
  rocksdb::ReadOptions read_options;
  read_options.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> meta_it(
      db_->NewIterator(read_options, handles_[1]));
  std::unique_ptr<rocksdb::Iterator> data_it(
      db_->NewIterator(read_options, handles_[2]));
  for (meta_it->SeekToFirst(); meta_it->Valid(); meta_it->Next()) {
    const std::string name = meta_it->key().ToString();
    v1::StoredVariable meta;
    if (!meta.ParseFromArray(meta_it->value().data(),
                             static_cast<int>(meta_it->value().size())) ||
        meta.info().name() != name || meta.chunk_bytes() <= 0 ||
        meta.info().byte_size() < 0) {
      return absl::DataLossError(absl::StrCat(
          "Stored variable '", name, "' is damaged: its metadata is corrupt"));
    }
    const int64_t total = meta.info().byte_size();
    const int64_t chunks = NumChunks(total, meta.chunk_bytes());
    std::string data;
    data.resize(static_cast<size_t>(total));
    const std::string prefix = ChunkPrefix(name);
    int64_t expected = 0;
    for (data_it->Seek(prefix);
         data_it->Valid() && data_it->key().starts_with(prefix);
         data_it->Next()) {
      const rocksdb::Slice key = data_it->key();
      if (key.size() != prefix.size() + 8 ||
          static_cast<int64_t>(absl::big_endian::Load64(
              key.data() + prefix.size())) != expected ||
          expected >= chunks) {
        return absl::DataLossError(
            absl::StrCat("Stored variable '", name,
                         "' is damaged: unexpected chunk key "
                         "after chunk ",
                         expected - 1, " of ", chunks));
      }
      const int64_t begin = expected * meta.chunk_bytes();
      const int64_t want = std::min(meta.chunk_bytes(), total - begin);
      if (static_cast<int64_t>(data_it->value().size()) != want) {
        return absl::DataLossError(absl::StrCat(
            "Stored variable '", name, "' is damaged: chunk ", expected,
            " has ", data_it->value().size(), " bytes, expected ", want));
      }
      memcpy(data.data() + begin, data_it->value().data(),
             static_cast<size_t>(want));
      ++expected;
    }
    VS_RETURN_IF_ERROR(FromRocksStatus(data_it->status(), "Reading the store"));
    if (expected != chunks) {
      return absl::DataLossError(
          absl::StrCat("Stored variable '", name, "' is damaged: ", chunks,
                       " chunks expected, ", expected, " found"));
    }
    VS_RETURN_IF_ERROR(fn(std::move(meta), std::move(data)));
  }
  return FromRocksStatus(meta_it->status(), "Reading the store");
}

}  // namespace varscope::server
