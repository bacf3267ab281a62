// Just enough of the zip format for NumPy's .npz files: a writer of stored
// (uncompressed) members, as numpy.savez writes them, and a reader of stored
// and deflated members (numpy.savez_compressed). ZIP64 records are written
// and read where sizes, offsets or the member count need them.
#ifndef VARSCOPE_CLIENT_CLI_ZIP_H_
#define VARSCOPE_CLIENT_CLI_ZIP_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/files.h"

namespace varscope::cli {

// Writes members one at a time, straight to the file. Thread-compatible.
class ZipWriter {
 public:
  // Creates or truncates `path`. Errors as WritableFile::Create.
  static absl::StatusOr<std::unique_ptr<ZipWriter>> Create(
      const std::string& path);
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  // Appends the member `name` whose content is the concatenation of
  // `pieces`. REQUIRES: Finish() not called.
  absl::Status Add(absl::string_view name,
                   absl::Span<const absl::string_view> pieces);

  // Writes the central directory and closes the file. The archive is valid
  // only once this returns OK.
  absl::Status Finish();

 private:
  struct Entry {
    std::string name;
    uint32_t crc32;
    uint64_t size;
    uint64_t offset;
  };
  explicit ZipWriter(std::unique_ptr<WritableFile> file)
      : file_(std::move(file)) {}

  std::unique_ptr<WritableFile> file_;
  std::vector<Entry> entries_;
};

// Reads the members of an archive. Thread-compatible.
class ZipReader {
 public:
  struct Member {
    std::string name;
    uint64_t size = 0;  // uncompressed
    uint64_t compressed_size = 0;
    uint64_t header_offset = 0;
    uint16_t method = 0;
    uint32_t crc32 = 0;
  };

  // Reads the central directory of `path`. Errors: the file's, or
  // INVALID_ARGUMENT if it is not a zip archive (or uses features other than
  // stored and deflated members without encryption).
  static absl::StatusOr<std::unique_ptr<ZipReader>> Open(
      const std::string& path);

  // In archive order.
  const std::vector<Member>& members() const { return members_; }

  // The uncompressed content of `member`. DATA_LOSS if it is damaged (bad
  // CRC, truncated, bad deflate stream).
  absl::StatusOr<std::string> Read(const Member& member) const;

 private:
  ZipReader(std::string path, std::unique_ptr<RandomAccessFile> file)
      : path_(std::move(path)), file_(std::move(file)) {}
  absl::Status ReadDirectory();

  const std::string path_;
  std::unique_ptr<RandomAccessFile> file_;
  std::vector<Member> members_;
};

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_ZIP_H_
