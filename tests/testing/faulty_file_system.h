// A RocksDB FileSystem that fails writes on demand, for disk-fault tests
// (like RocksDB's utilities/fault_injection_fs.h, reduced to what the tests
// need).
#ifndef VARSCOPE_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
#define VARSCOPE_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace varscope::testing {

// Thread-safe: the fault may change while RocksDB writes.
class FaultyFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  enum class Fault {
    kNone,
    // Appends, syncs and file creation fail with EIO.
    kIoError,
    // Only syncs fail with EIO: appended data stays in the file (as after a
    // failed fsync whose pages reach the disk later).
    kSyncIoError,
  };

  FaultyFileSystem();
  const char* Name() const override { return "FaultyFileSystem"; }

  void set_fault(Fault fault) { fault_.store(fault); }
  // Makes the disk full once `bytes` more are appended (over all files), as
  // the kernel's is: an append that does not fit writes what does and fails
  // with ENOSPC, and GetFreeSpace says what is left. kUnlimited (the
  // default) lifts it.
  static constexpr int64_t kUnlimited = -1;
  void set_free_bytes(int64_t bytes);
  // While held, every sync of a write-ahead log (a "*.log" file) waits until
  // released, as on a slow disk; held_syncs() is how many wait now.
  void HoldLogSyncs(bool hold);
  int held_syncs() const;
  // How many operations failed since the start, in all files or in the
  // files named `name` (in any directory).
  int failures() const;
  int failures(const std::string& name) const;

  // The status a write operation on file `path` other than an append
  // (`sync` for Sync/Fsync/RangeSync) returns now; counts failures.
  rocksdb::IOStatus Check(const std::string& path, bool sync);
  // Appends `data` to `file` (`path`) as far as the disk has room, failing
  // as the fault says.
  rocksdb::IOStatus Append(
      const std::string& path, const rocksdb::Slice& data,
      const std::function<rocksdb::IOStatus(const rocksdb::Slice&)>& append);

  rocksdb::IOStatus GetFreeSpace(const std::string& path,
                                 const rocksdb::IOOptions& options,
                                 uint64_t* free_space,
                                 rocksdb::IODebugContext* dbg) override;

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
  // `status`, with the file `path` it opened wrapped to fail on demand.
  rocksdb::IOStatus Wrap(rocksdb::IOStatus status, const std::string& path,
                         std::unique_ptr<rocksdb::FSWritableFile>* result);
  void CountFailure(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);

  std::atomic<Fault> fault_{Fault::kNone};
  mutable absl::Mutex mu_;
  int64_t free_bytes_ ABSL_GUARDED_BY(mu_) = kUnlimited;
  // By file name.
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  bool hold_log_syncs_ ABSL_GUARDED_BY(mu_) = false;
  int held_syncs_ ABSL_GUARDED_BY(mu_) = 0;
};

// An Env over a FaultyFileSystem, for StorageOptions::env.
struct FaultyEnv {
  FaultyEnv();
  std::shared_ptr<FaultyFileSystem> fs;
  std::unique_ptr<rocksdb::Env> env;
};

}  // namespace varscope::testing

#endif  // VARSCOPE_TESTS_TESTING_FAULTY_FILE_SYSTEM_H_
