#include "tests/testing/faulty_file_system.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"

namespace varscope::testing {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

class FaultyFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultyFile(std::unique_ptr<rocksdb::FSWritableFile> file,
             FaultyFileSystem* fs, std::string path)
      : FSWritableFileOwnerWrapper(std::move(file)),
        fs_(fs),
        path_(std::move(path)) {}

  IOStatus Append(const Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    return fs_->Append(path_, data, [&](const Slice& part) {
      return FSWritableFileOwnerWrapper::Append(part, options, dbg);
    });
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    return fs_->Append(path_, data, [&](const Slice& part) {
      // The checksum covers the whole of `data`: a part goes unchecked.
      return part.size() == data.size()
                 ? FSWritableFileOwnerWrapper::Append(part, options, info, dbg)
                 : FSWritableFileOwnerWrapper::Append(part, options, dbg);
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            IODebugContext* dbg) override {
    return fs_->Append(path_, data, [&](const Slice& part) {
      return FSWritableFileOwnerWrapper::PositionedAppend(part, offset, options,
                                                          dbg);
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    return fs_->Append(path_, data, [&](const Slice& part) {
      return part.size() == data.size()
                 ? FSWritableFileOwnerWrapper::PositionedAppend(
                       part, offset, options, info, dbg)
                 : FSWritableFileOwnerWrapper::PositionedAppend(part, offset,
                                                                options, dbg);
    });
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(path_, /*sync=*/true);
    return s.ok() ? FSWritableFileOwnerWrapper::Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(path_, /*sync=*/true);
    return s.ok() ? FSWritableFileOwnerWrapper::Fsync(options, dbg) : s;
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    IOStatus s = fs_->Check(path_, /*sync=*/true);
    return s.ok() ? FSWritableFileOwnerWrapper::RangeSync(offset, nbytes,
                                                          options, dbg)
                  : s;
  }

 private:
  FaultyFileSystem* const fs_;
  const std::string path_;
};

}  // namespace

FaultyFileSystem::FaultyFileSystem()
    : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

void FaultyFileSystem::set_free_bytes(int64_t bytes) {
  absl::MutexLock l(&mu_);
  free_bytes_ = bytes;
}

int FaultyFileSystem::failures() const {
  absl::MutexLock l(&mu_);
  int total = 0;
  for (const auto& [name, count] : failures_) total += count;
  return total;
}

int FaultyFileSystem::failures(const std::string& name) const {
  absl::MutexLock l(&mu_);
  auto it = failures_.find(name);
  return it == failures_.end() ? 0 : it->second;
}

void FaultyFileSystem::CountFailure(const std::string& path) {
  absl::MutexLock l(&mu_);
  ++failures_[std::filesystem::path(path).filename().string()];
}

void FaultyFileSystem::HoldLogSyncs(bool hold) {
  absl::MutexLock l(&mu_);
  hold_log_syncs_ = hold;
}

int FaultyFileSystem::held_syncs() const {
  absl::MutexLock l(&mu_);
  return held_syncs_;
}

IOStatus FaultyFileSystem::Check(const std::string& path, bool sync) {
  if (sync && absl::EndsWith(path, ".log")) {
    absl::MutexLock l(&mu_);
    if (hold_log_syncs_) {
      ++held_syncs_;
      mu_.Await(absl::Condition(
          +[](bool* hold) { return !*hold; }, &hold_log_syncs_));
      --held_syncs_;
    }
  }
  switch (fault_.load()) {
    case Fault::kNone:
      return IOStatus::OK();
    case Fault::kIoError:
      CountFailure(path);
      return IOStatus::IOError("injected: input/output error");
    case Fault::kSyncIoError:
      if (!sync) return IOStatus::OK();
      CountFailure(path);
      return IOStatus::IOError("injected: input/output error on fsync");
  }
  return IOStatus::OK();
}

IOStatus FaultyFileSystem::Append(
    const std::string& path, const Slice& data,
    const std::function<IOStatus(const Slice&)>& append) {
  if (IOStatus s = Check(path, /*sync=*/false); !s.ok()) return s;
  size_t fits = data.size();
  {
    absl::MutexLock l(&mu_);
    if (free_bytes_ != kUnlimited) {
      fits = std::min(fits, static_cast<size_t>(free_bytes_));
      free_bytes_ -= static_cast<int64_t>(fits);
    }
  }
  if (fits == data.size()) return append(data);
  if (fits > 0) {
    if (IOStatus s = append(Slice(data.data(), fits)); !s.ok()) return s;
  }
  CountFailure(path);
  return IOStatus::NoSpace("injected: no space left on device");
}

IOStatus FaultyFileSystem::GetFreeSpace(const std::string& path,
                                        const IOOptions& options,
                                        uint64_t* free_space,
                                        IODebugContext* dbg) {
  {
    absl::MutexLock l(&mu_);
    if (free_bytes_ != kUnlimited) {
      *free_space = static_cast<uint64_t>(free_bytes_);
      return IOStatus::OK();
    }
  }
  return FileSystemWrapper::GetFreeSpace(path, options, free_space, dbg);
}

IOStatus FaultyFileSystem::Wrap(
    IOStatus status, const std::string& path,
    std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (status.ok()) {
    *result = std::make_unique<FaultyFile>(std::move(*result), this, path);
  }
  return status;
}

IOStatus FaultyFileSystem::NewWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  if (IOStatus s = Check(name, /*sync=*/false); !s.ok()) return s;
  return Wrap(FileSystemWrapper::NewWritableFile(name, options, result, dbg),
              name, result);
}

IOStatus FaultyFileSystem::ReopenWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  if (IOStatus s = Check(name, /*sync=*/false); !s.ok()) return s;
  return Wrap(FileSystemWrapper::ReopenWritableFile(name, options, result, dbg),
              name, result);
}

IOStatus FaultyFileSystem::ReuseWritableFile(
    const std::string& name, const std::string& old_name,
    const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  if (IOStatus s = Check(name, /*sync=*/false); !s.ok()) return s;
  return Wrap(FileSystemWrapper::ReuseWritableFile(name, old_name, options,
                                                   result, dbg),
              name, result);
}

FaultyEnv::FaultyEnv()
    : fs(std::make_shared<FaultyFileSystem>()),
      env(rocksdb::NewCompositeEnv(fs)) {}

}  // namespace varscope::testing
