#include "common/files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace varscope {
namespace {

absl::Status ErrnoError(int error, absl::string_view what,
                        absl::string_view path) {
  return absl::ErrnoToStatus(error, absl::StrCat("Cannot ", what, " ", path));
}

// Every path opened here is one a user named (the CLI's arguments, a
// checkpoint's prefix): one that cannot be opened is a usage error, whatever
// errno says.
absl::Status OpenError(int error, absl::string_view what,
                       absl::string_view path) {
  return absl::InvalidArgumentError(ErrnoError(error, what, path).message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<RandomAccessFile>> RandomAccessFile::Open(
    const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OpenError(errno, "open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    close(fd);
    return ErrnoError(error, "stat", path);
  }
  return std::unique_ptr<RandomAccessFile>(
      new RandomAccessFile(path, fd, static_cast<uint64_t>(st.st_size)));
}

RandomAccessFile::~RandomAccessFile() { close(fd_); }

absl::StatusOr<std::string> RandomAccessFile::ReadAt(uint64_t offset,
                                                     size_t n) const {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    const ssize_t r = pread(fd_, out.data() + done, n - done,
                            static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(errno, "read", path_);
    if (r == 0) {
      return absl::DataLossError(absl::StrCat(path_, " ends at byte ",
                                              offset + done, ", expected ",
                                              offset + n, " bytes"));
    }
    done += static_cast<size_t>(r);
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file,
                      RandomAccessFile::Open(path));
  return file->ReadAt(0, static_cast<size_t>(file->size()));
}

absl::StatusOr<std::unique_ptr<WritableFile>> WritableFile::Create(
    const std::string& path) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return OpenError(errno, "create", path);
  return std::unique_ptr<WritableFile>(new WritableFile(path, fd));
}

WritableFile::~WritableFile() {
  if (fd_ >= 0) close(fd_);
}

absl::Status WritableFile::Append(absl::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t w = write(fd_, data.data() + done, data.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return ErrnoError(errno, "write", path_);
    done += static_cast<size_t>(w);
  }
  offset_ += data.size();
  return absl::OkStatus();
}

absl::Status WritableFile::Close() {
  const int fd = fd_;
  fd_ = -1;
  if (close(fd) != 0) return ErrnoError(errno, "close", path_);
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, absl::string_view content) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file,
                      WritableFile::Create(path));
  VS_RETURN_IF_ERROR(file->Append(content));
  return file->Close();
}

}  // namespace varscope
