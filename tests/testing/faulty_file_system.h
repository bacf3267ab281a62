// A RocksDB FileSystem that fails writes on demand, for disk-fault tests
// (like RocksDB's utilities/fault_injection_fs.h, reduced to what the tests
// need).
#ifndef VARSCOPE_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
#define VARSCOPE_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_

#include <atomic>
#include <memory>
#include <string>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace varscope::testing {

// Thread-safe: the fault may change while RocksDB writes.
class FaultyFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  enum class Fault {
    kNone,
    // Appends, syncs and file creation fail with ENOSPC.
    kNoSpace,
    // Appends, syncs and file creation fail with EIO.
    kIoError,
    // Only syncs fail with EIO: appended data stays in the file (as after a
    // failed fsync whose pages reach the disk later).
    kSyncIoError,
  };

  FaultyFileSystem();
  const char* Name() const override { return "FaultyFileSystem"; }

  void set_fault(Fault fault) { fault_.store(fault); }
  // How many operations failed since the start.
  int failures() const { return failures_.load(); }

  // The status a write operation (`sync` for Sync/Fsync/RangeSync) returns
  // now; counts failures.
  rocksdb::IOStatus Check(bool sync);

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& name, const std::string& old_name,
      const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;

 private:
  // `status`, with the file it opened wrapped to fail on demand.
  rocksdb::IOStatus Wrap(rocksdb::IOStatus status,
                         std::unique_ptr<rocksdb::FSWritableFile>* result);

  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<int> failures_{0};
};

// An Env over a FaultyFileSystem, for StorageOptions::env.
struct FaultyEnv {
  FaultyEnv();
  std::shared_ptr<FaultyFileSystem> fs;
  std::unique_ptr<rocksdb::Env> env;
};

}  // namespace varscope::testing

#endif  // VARSCOPE_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
