// Local files (the admin CLI's exports, TensorFlow checkpoints): whole-file
// reads and writes, positioned reads, and appending writes. Errors carry the
// path and errno's text.
#ifndef VARSCOPE_COMMON_FILES_H_
#define VARSCOPE_COMMON_FILES_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace varscope {

// The content of the file at `path`. INVALID_ARGUMENT if it cannot be
// opened (a usage error: the user named it), other errno-derived codes
// otherwise.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Creates or truncates `path` and writes `content` to it. Errors as
// WritableFile's.
absl::Status WriteFile(const std::string& path, absl::string_view content);

// A file open for positioned reads. Thread-compatible.
class RandomAccessFile {
 public:
  // INVALID_ARGUMENT if `path` cannot be opened (see ReadFile), other
  // errno-derived codes otherwise.
  static absl::StatusOr<std::unique_ptr<RandomAccessFile>> Open(
      const std::string& path);
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;
  ~RandomAccessFile();

  uint64_t size() const { return size_; }
  // Reads exactly `n` bytes at `offset`. DATA_LOSS if the file ends first.
  absl::StatusOr<std::string> ReadAt(uint64_t offset, size_t n) const;

 private:
  RandomAccessFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  const std::string path_;
  const int fd_;
  const uint64_t size_;
};

// A new file written front to back. Thread-compatible. The file is closed
// on destruction; only Close() reports whether everything reached it.
class WritableFile {
 public:
  // Creates or truncates `path`. INVALID_ARGUMENT if it cannot (see
  // ReadFile).
  static absl::StatusOr<std::unique_ptr<WritableFile>> Create(
      const std::string& path);
  WritableFile(const WritableFile&) = delete;
  WritableFile& operator=(const WritableFile&) = delete;
  ~WritableFile();

  absl::Status Append(absl::string_view data);
  // Bytes appended so far.
  uint64_t offset() const { return offset_; }
  absl::Status Close();

 private:
  WritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  int fd_;
  uint64_t offset_ = 0;
};

}  // namespace varscope

#endif  // VARSCOPE_COMMON_FILES_H_
