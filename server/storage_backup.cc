// Copies of the store: checkpoints, backups and restores (see storage.h).
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "rocksdb/utilities/backup_engine.h"
#include "rocksdb/utilities/checkpoint.h"
#include "server/storage.h"

namespace varscope::server {
namespace {

namespace fs = std::filesystem;

// Whether `dir` is a checkpoint (an openable store) rather than a backup
// directory.
bool IsStoreDirectory(const std::string& dir) {
  std::error_code error;
  return fs::exists(fs::path(dir) / "CURRENT", error);
}

bool IsMissingOrEmpty(const std::string& dir) {
  std::error_code error;
  return !fs::exists(dir, error) || fs::is_empty(dir, error);
}

// What the store in `dir` holds, read through `env` (null: the default).
absl::StatusOr<StoreSummary> Summarize(rocksdb::Env* env,
                                       const std::string& dir) {
  rocksdb::DBOptions options;
  if (env != nullptr) options.env = env;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"meta", rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  VS_RETURN_IF_ERROR(FromRocksStatus(
      rocksdb::DB::OpenForReadOnly(options, dir, families, &handles, &raw_db),
      absl::StrCat("Opening the copy of the store in ", dir)));
  std::unique_ptr<rocksdb::DB> db(raw_db);
  StoreSummary summary;
  summary.sequence = db->GetLatestSequenceNumber();
  absl::Status status;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), handles[1]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      v1::StoredVariable meta;
      if (!meta.ParseFromArray(it->value().data(),
                               static_cast<int>(it->value().size()))) {
        status = absl::DataLossError(
            absl::StrCat("The copy of the store in ", dir, " has damaged ",
                         "metadata for '", it->key().ToString(), "'"));
        break;
      }
      ++summary.variables;
      summary.bytes += meta.info().byte_size();
      summary.versions[meta.info().name()] = meta.info().version();
    }
    if (status.ok()) {
      status = FromRocksStatus(it->status(),
                               absl::StrCat("Reading the copy in ", dir));
    }
  }
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  VS_RETURN_IF_ERROR(status);
  return summary;
}

absl::Status BackupDirectoryError(const rocksdb::Status& status,
                                  const std::string& dir) {
  return FromRocksStatus(status, absl::StrCat("Backup directory ", dir));
}

// Every backup of `engine` with what it holds and the bytes each one added
// over the ones before it.
absl::StatusOr<std::vector<BackupSummary>> Summaries(
    rocksdb::BackupEngineReadOnlyBase& engine, const std::string& dir) {
  std::vector<rocksdb::BackupInfo> infos;
  engine.GetBackupInfo(&infos, /*include_file_details=*/true);
  std::vector<BackupSummary> summaries;
  std::set<std::string> seen;
  for (const rocksdb::BackupInfo& info : infos) {
    BackupSummary summary;
    summary.backup_id = info.backup_id;
    summary.timestamp_seconds = info.timestamp;
    summary.size_bytes = static_cast<int64_t>(info.size);
    summary.files = info.number_files;
    for (const rocksdb::BackupFileInfo& file : info.file_details) {
      // Relative to the backup directory: shared files have one name.
      if (seen.insert(file.relative_filename).second) {
        summary.added_bytes += static_cast<int64_t>(file.size);
      }
    }
    VS_ASSIGN_OR_RETURN(summary.contents,
                        Summarize(info.env_for_open.get(), info.name_for_open));
    summaries.push_back(std::move(summary));
  }
  if (summaries.empty()) {
    return absl::NotFoundError(
        absl::StrCat("Backup directory ", dir, " holds no backup"));
  }
  return summaries;
}

}  // namespace

absl::StatusOr<StoreSummary> Storage::Checkpoint(const std::string& dir) {
  std::error_code error;
  if (fs::exists(dir, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat("Cannot write a checkpoint into ", dir,
                     ": it exists (a checkpoint goes into a new directory)"));
  }
  {
    absl::ReaderMutexLock l(&mu_);
    if (db_ == nullptr) {
      return absl::UnavailableError(
          "The store is closed after a write error; try again");
    }
    rocksdb::Checkpoint* raw = nullptr;
    VS_RETURN_IF_ERROR(FromRocksStatus(
        rocksdb::Checkpoint::Create(db_.get(), &raw), "Creating a checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    VS_RETURN_IF_ERROR(
        FromRocksStatus(checkpoint->CreateCheckpoint(dir),
                        absl::StrCat("Writing a checkpoint into ", dir)));
  }
  return Summarize(options_.env, dir);
}

absl::StatusOr<BackupSummary> Storage::Backup(const std::string& backup_dir) {
  if (IsStoreDirectory(backup_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat(backup_dir, " holds a store or checkpoint, not backups"));
  }
  rocksdb::Env* env =
      options_.env != nullptr ? options_.env : rocksdb::Env::Default();
  rocksdb::BackupEngine* raw = nullptr;
  VS_RETURN_IF_ERROR(BackupDirectoryError(
      rocksdb::BackupEngine::Open(env, rocksdb::BackupEngineOptions(backup_dir),
                                  &raw),
      backup_dir));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  {
    absl::ReaderMutexLock l(&mu_);
    if (db_ == nullptr) {
      return absl::UnavailableError(
          "The store is closed after a write error; try again");
    }
    rocksdb::CreateBackupOptions options;
    options.flush_before_backup = false;  // the copied log makes it whole
    VS_RETURN_IF_ERROR(
        FromRocksStatus(engine->CreateNewBackup(options, db_.get()),
                        absl::StrCat("Writing a backup into ", backup_dir)));
  }
  VS_ASSIGN_OR_RETURN(std::vector<BackupSummary> summaries,
                      Summaries(*engine, backup_dir));
  return summaries.back();
}

absl::StatusOr<std::vector<BackupSummary>> Storage::ListBackups(
    const std::string& backup_dir) {
  std::error_code error;
  if (!fs::is_directory(backup_dir, error)) {
    return absl::NotFoundError(
        absl::StrCat("Backup directory ", backup_dir, " does not exist"));
  }
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  VS_RETURN_IF_ERROR(
      BackupDirectoryError(rocksdb::BackupEngineReadOnly::Open(
                               rocksdb::Env::Default(),
                               rocksdb::BackupEngineOptions(backup_dir), &raw),
                           backup_dir));
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
  return Summaries(*engine, backup_dir);
}

absl::StatusOr<RestoredStore> Storage::Restore(const std::string& backup_dir,
                                               uint32_t backup_id,
                                               const std::string& data_dir) {
  if (!IsMissingOrEmpty(data_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("Refusing to restore into ", data_dir,
                     ": it exists and is not empty (restore into a new or "
                     "empty directory)"));
  }
  std::error_code error;
  if (!fs::is_directory(backup_dir, error)) {
    return absl::NotFoundError(absl::StrCat(backup_dir, " does not exist"));
  }
  fs::create_directories(data_dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("Cannot create ", data_dir, ": ", error.message()));
  }
  RestoredStore restored;
  auto restore = [&]() -> absl::Status {
    if (IsStoreDirectory(backup_dir)) {
      if (backup_id != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            backup_dir, " is a checkpoint; a backup id applies to backups"));
      }
      for (const fs::directory_entry& entry :
           fs::directory_iterator(backup_dir, error)) {
        fs::copy_file(entry.path(),
                      fs::path(data_dir) / entry.path().filename(), error);
        if (error) break;
      }
      if (error) {
        return absl::UnavailableError(absl::StrCat(
            "Copying checkpoint ", backup_dir, ": ", error.message()));
      }
      return absl::OkStatus();
    }
    rocksdb::BackupEngineReadOnly* raw = nullptr;
    VS_RETURN_IF_ERROR(BackupDirectoryError(
        rocksdb::BackupEngineReadOnly::Open(
            rocksdb::Env::Default(), rocksdb::BackupEngineOptions(backup_dir),
            &raw),
        backup_dir));
    std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
    restored.backup_id = backup_id;
    if (backup_id == 0) {
      std::vector<rocksdb::BackupInfo> infos;
      engine->GetBackupInfo(&infos);
      if (infos.empty()) {
        return absl::NotFoundError(
            absl::StrCat("Backup directory ", backup_dir, " holds no backup"));
      }
      restored.backup_id = infos.back().backup_id;
    }
    return BackupDirectoryError(
        engine->RestoreDBFromBackup(restored.backup_id, data_dir, data_dir),
        backup_dir);
  };
  absl::Status status = restore();
  StoreSummary& summary = restored.contents;
  if (status.ok()) {
    // Check that every variable loads, as the server will at start-up.
    absl::StatusOr<std::unique_ptr<Storage>> storage =
        Storage::Open(StorageOptions(), data_dir);
    status = storage.status();
    if (status.ok()) {
      status =
          (*storage)->LoadAll([&](v1::StoredVariable meta, std::string data) {
            ++summary.variables;
            summary.bytes += static_cast<int64_t>(data.size());
            summary.versions[meta.info().name()] = meta.info().version();
            return absl::OkStatus();
          });
    }
    if (status.ok()) {
      absl::ReaderMutexLock l(&(*storage)->mu_);
      summary.sequence = (*storage)->db_->GetLatestSequenceNumber();
    }
  }
  if (!status.ok()) {
    // Leave no half-restored store behind.
    for (const fs::directory_entry& entry :
         fs::directory_iterator(data_dir, error)) {
      fs::remove_all(entry.path(), error);
    }
    return status;
  }
  return restored;
}

}  // namespace varscope::server
