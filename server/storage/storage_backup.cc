// Copies of the store: checkpoints, backups and restores (see storage.h).
#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "rocksdb/utilities/backup_engine.h"
#include "rocksdb/utilities/checkpoint.h"
#include "server/storage/storage.h"

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

absl::Status BackupDirectoryError(const rocksdb::Status& status,
                                  const std::string& dir) {
  return FromRocksStatus(status, absl::StrCat("Backup directory ", dir));
}

absl::Status NoBackup(const std::string& dir) {
  return absl::NotFoundError(
      absl::StrCat("Backup directory ", dir, " holds no backup"));
}

// A backup's application metadata: "variables=N bytes=B sequence=S", and
// " cut=ID" for a backup of a cluster's cut.
std::string ContentsMetadata(const StoreSummary& contents) {
  return absl::StrCat("variables=", contents.variables,
                      " bytes=", contents.bytes,
                      " sequence=", contents.sequence,
                      contents.cut.empty() ? "" : " cut=", contents.cut);
}

StoreSummary ParseContentsMetadata(const std::string& metadata) {
  StoreSummary contents;
  for (absl::string_view field : absl::StrSplit(metadata, ' ')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(field, '=');
    if (kv.first == "variables") {
      (void)absl::SimpleAtoi(kv.second, &contents.variables);
    } else if (kv.first == "bytes") {
      (void)absl::SimpleAtoi(kv.second, &contents.bytes);
    } else if (kv.first == "sequence") {
      (void)absl::SimpleAtoi(kv.second, &contents.sequence);
    } else if (kv.first == "cut") {
      contents.cut = kv.second;
    }
  }
  return contents;
}

// Every backup of `engine`, with the bytes each one added over the ones
// before it.
absl::StatusOr<std::vector<BackupSummary>> Summaries(
    rocksdb::BackupEngineReadOnlyBase& engine, const std::string& dir) {
  std::vector<rocksdb::BackupInfo> infos;
  engine.GetBackupInfo(&infos, /*include_file_details=*/true);
  if (infos.empty()) return NoBackup(dir);
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
    summary.contents = ParseContentsMetadata(info.app_metadata);
    summaries.push_back(std::move(summary));
  }
  return summaries;
}

// Opens the backup engine of `dir`: NOT_FOUND if it holds no backup.
absl::StatusOr<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenBackups(
    const std::string& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat(dir, " does not exist"));
  }
  if (!fs::is_directory(fs::path(dir) / "meta", error)) return NoBackup(dir);
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  VS_RETURN_IF_ERROR(BackupDirectoryError(
      rocksdb::BackupEngineReadOnly::Open(
          rocksdb::Env::Default(), rocksdb::BackupEngineOptions(dir), &raw),
      dir));
  return std::unique_ptr<rocksdb::BackupEngineReadOnly>(raw);
}

}  // namespace

absl::Status Storage::FlushMemtables() {
  absl::ReaderMutexLock l(&mu_);
  if (db_ == nullptr) {
    return absl::UnavailableError(
        "The store is closed after a write error; try again");
  }
  return FromRocksStatus(db_->Flush(rocksdb::FlushOptions(), handles_),
                         "Flushing the store");
}

absl::StatusOr<uint64_t> Storage::Checkpoint(const std::string& dir) {
  std::error_code error;
  if (fs::exists(dir, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat("Cannot write a checkpoint into ", dir,
                     ": it exists (a checkpoint goes into a new directory)"));
  }
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
  return db_->GetLatestSequenceNumber();
}

std::string Storage::StagingDirectory() const {
  return (fs::path(path_) / "backup-staging").string();
}

absl::StatusOr<BackupSummary> Storage::BackupCheckpoint(
    const std::string& checkpoint_dir, const std::string& backup_dir,
    const StoreSummary& contents) {
  struct Cleanup {
    const std::string& dir;
    ~Cleanup() {
      std::error_code error;
      fs::remove_all(dir, error);
    }
  } cleanup{checkpoint_dir};
  if (IsStoreDirectory(backup_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat(backup_dir, " holds a store or checkpoint, not backups"));
  }
  rocksdb::Env* env =
      options_.env != nullptr ? options_.env : rocksdb::Env::Default();
  rocksdb::BackupEngine* raw_engine = nullptr;
  VS_RETURN_IF_ERROR(BackupDirectoryError(
      rocksdb::BackupEngine::Open(env, rocksdb::BackupEngineOptions(backup_dir),
                                  &raw_engine),
      backup_dir));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw_engine);

  // The checkpoint is a private copy: open it as a store to back it up.
  rocksdb::DBOptions options;
  options.env = env;
  options.avoid_flush_during_recovery = true;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  VS_RETURN_IF_ERROR(FromRocksStatus(
      rocksdb::DB::Open(options, checkpoint_dir, Families(), &handles, &raw_db),
      absl::StrCat("Opening the checkpoint in ", checkpoint_dir)));
  std::unique_ptr<rocksdb::DB> db(raw_db);
  rocksdb::CreateBackupOptions backup_options;
  backup_options.flush_before_backup = true;
  absl::Status status =
      FromRocksStatus(engine->CreateNewBackupWithMetadata(
                          backup_options, db.get(), ContentsMetadata(contents)),
                      absl::StrCat("Writing a backup into ", backup_dir));
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  }
  db.reset();
  VS_RETURN_IF_ERROR(status);
  VS_ASSIGN_OR_RETURN(std::vector<BackupSummary> summaries,
                      Summaries(*engine, backup_dir));
  BackupSummary backup = std::move(summaries.back());
  backup.contents = contents;
  return backup;
}

absl::StatusOr<std::vector<uint32_t>> Storage::PruneBackups(
    const std::string& backup_dir, uint32_t keep) {
  if (keep == 0) {
    return absl::InvalidArgumentError(
        "Keeping 0 backups would delete the newest: keep at least 1");
  }
  // Opened read-only first so that a missing directory is not created.
  VS_RETURN_IF_ERROR(OpenBackups(backup_dir).status());
  rocksdb::BackupEngine* raw_engine = nullptr;
  VS_RETURN_IF_ERROR(BackupDirectoryError(
      rocksdb::BackupEngine::Open(rocksdb::Env::Default(),
                                  rocksdb::BackupEngineOptions(backup_dir),
                                  &raw_engine),
      backup_dir));
  std::unique_ptr<rocksdb::BackupEngine> engine(raw_engine);
  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos);
  std::vector<uint32_t> deleted;
  for (size_t i = 0; i + keep < infos.size(); ++i) {
    deleted.push_back(infos[i].backup_id);
  }
  VS_RETURN_IF_ERROR(
      BackupDirectoryError(engine->PurgeOldBackups(keep), backup_dir));
  return deleted;
}

absl::StatusOr<std::vector<BackupSummary>> Storage::ListBackups(
    const std::string& backup_dir) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::BackupEngineReadOnly> engine,
                      OpenBackups(backup_dir));
  return Summaries(*engine, backup_dir);
}

// Long: one restore's steps in order (checks, copy, verification), sharing
// the handling of a failure among them.
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
        if (!entry.is_regular_file()) continue;
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
    VS_ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::BackupEngineReadOnly> engine,
                        OpenBackups(backup_dir));
    std::vector<rocksdb::BackupInfo> infos;
    engine->GetBackupInfo(&infos);
    if (infos.empty()) return NoBackup(backup_dir);
    restored.backup_id = backup_id == 0 ? infos.back().backup_id : backup_id;
    if (std::none_of(infos.begin(), infos.end(), [&](const auto& info) {
          return info.backup_id == restored.backup_id;
        })) {
      return absl::NotFoundError(absl::StrCat(
          "Backup ", backup_id, " is not in backup directory ", backup_dir,
          " (it holds backups ", infos.front().backup_id, " to ",
          infos.back().backup_id, ")"));
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
      status = (*storage)->LoadAll([&](Storage::LoadedVariable var) {
        ++summary.variables;
        summary.bytes += static_cast<int64_t>(var.data.size());
        summary.versions[var.meta.info().name()] = var.meta.info().version();
        return absl::OkStatus();
      });
    }
    if (status.ok()) {
      absl::StatusOr<std::optional<v1::ClusterIdentity>> cluster =
          (*storage)->ReadClusterIdentity();
      status = cluster.status();
      if (status.ok()) restored.cluster = *std::move(cluster);
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
