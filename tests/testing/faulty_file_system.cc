#include "tests/testing/faulty_file_system.h"

#include <utility>

namespace varscope::testing {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

class FaultyFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultyFile(std::unique_ptr<rocksdb::FSWritableFile> file,
             FaultyFileSystem* fs)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}

  IOStatus Append(const Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    IOStatus s = fs_->Check(/*sync=*/false);
    return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, dbg) : s;
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    IOStatus s = fs_->Check(/*sync=*/false);
    return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, info, dbg)
                  : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            IODebugContext* dbg) override {
    IOStatus s = fs_->Check(/*sync=*/false);
    return s.ok() ? FSWritableFileOwnerWrapper::PositionedAppend(data, offset,
                                                                 options, dbg)
                  : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset,
                            const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    IOStatus s = fs_->Check(/*sync=*/false);
    return s.ok() ? FSWritableFileOwnerWrapper::PositionedAppend(
                        data, offset, options, info, dbg)
                  : s;
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(/*sync=*/true);
    return s.ok() ? FSWritableFileOwnerWrapper::Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = fs_->Check(/*sync=*/true);
    return s.ok() ? FSWritableFileOwnerWrapper::Fsync(options, dbg) : s;
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    IOStatus s = fs_->Check(/*sync=*/true);
    return s.ok() ? FSWritableFileOwnerWrapper::RangeSync(offset, nbytes,
                                                          options, dbg)
                  : s;
  }

 private:
  FaultyFileSystem* const fs_;
};

}  // namespace

FaultyFileSystem::FaultyFileSystem()
    : FileSystemWrapper(rocksdb::FileSystem::Default()) {}

IOStatus FaultyFileSystem::Check(bool sync) {
  switch (fault_.load()) {
    case Fault::kNone:
      return IOStatus::OK();
    case Fault::kNoSpace:
      ++failures_;
      return IOStatus::NoSpace("injected: no space left on device");
    case Fault::kIoError:
      ++failures_;
      return IOStatus::IOError("injected: input/output error");
    case Fault::kSyncIoError:
      if (!sync) return IOStatus::OK();
      ++failures_;
      return IOStatus::IOError("injected: input/output error on fsync");
  }
  return IOStatus::OK();
}

IOStatus FaultyFileSystem::Wrap(
    IOStatus status, std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (status.ok()) {
    *result = std::make_unique<FaultyFile>(std::move(*result), this);
  }
  return status;
}

IOStatus FaultyFileSystem::NewWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  if (IOStatus s = Check(/*sync=*/false); !s.ok()) return s;
  return Wrap(FileSystemWrapper::NewWritableFile(name, options, result, dbg),
              result);
}

IOStatus FaultyFileSystem::ReopenWritableFile(
    const std::string& name, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  if (IOStatus s = Check(/*sync=*/false); !s.ok()) return s;
  return Wrap(FileSystemWrapper::ReopenWritableFile(name, options, result, dbg),
              result);
}

IOStatus FaultyFileSystem::ReuseWritableFile(
    const std::string& name, const std::string& old_name,
    const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  if (IOStatus s = Check(/*sync=*/false); !s.ok()) return s;
  return Wrap(FileSystemWrapper::ReuseWritableFile(name, old_name, options,
                                                   result, dbg),
              result);
}

FaultyEnv::FaultyEnv()
    : fs(std::make_shared<FaultyFileSystem>()),
      env(rocksdb::NewCompositeEnv(fs)) {}

}  // namespace varscope::testing
