#include "client/cli/zip.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kVersionZip64 = 45;
constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kMethodDeflated = 8;
// 1980-01-01 00:00:00 in MS-DOS format: archives are reproducible.
constexpr uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;
constexpr uint16_t kDosTime = 0;
constexpr uint32_t kMax32 = std::numeric_limits<uint32_t>::max();
constexpr uint16_t kMax16 = std::numeric_limits<uint16_t>::max();
constexpr size_t kEndSize = 22;
constexpr size_t kZip64LocatorSize = 20;

void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}
void Put32(std::string& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v & 0xffff));
  Put16(out, static_cast<uint16_t>(v >> 16));
}
void Put64(std::string& out, uint64_t v) {
  Put32(out, static_cast<uint32_t>(v & 0xffffffff));
  Put32(out, static_cast<uint32_t>(v >> 32));
}

// The little-endian field of `bytes` bytes at `at`.
uint64_t Get(const std::string& in, size_t at, int bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data()) + at;
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A 32-bit field, or the ZIP64 marker when `v` does not fit.
uint32_t Clamp32(uint64_t v) {
  return v >= kMax32 ? kMax32 : static_cast<uint32_t>(v);
}

absl::Status NotZip(absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, " is not a readable zip archive: ", why));
}

absl::Status Damaged(absl::string_view path, absl::string_view member,
                     absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat(path, ": member ", member, " is damaged: ", why));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ZipWriter>> ZipWriter::Create(
    const std::string& path) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file,
                      WritableFile::Create(path));
  return std::unique_ptr<ZipWriter>(new ZipWriter(std::move(file)));
}

absl::Status ZipWriter::Add(absl::string_view name,
                            absl::Span<const absl::string_view> pieces) {
  Entry entry{std::string(name), 0, 0, file_->offset()};
  uLong crc = crc32(0L, Z_NULL, 0);
  for (absl::string_view piece : pieces) {
    // crc32_z takes a size_t length: pieces over 4 GiB are fine.
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(piece.data()),
                  piece.size());
    entry.size += piece.size();
  }
  entry.crc32 = static_cast<uint32_t>(crc);
  const bool zip64 = entry.size >= kMax32;
  std::string header;
  Put32(header, kLocalHeaderSignature);
  Put16(header, zip64 ? kVersionZip64 : 20);
  Put16(header, 0);  // flags
  Put16(header, kMethodStored);
  Put16(header, kDosTime);
  Put16(header, kDosDate);
  Put32(header, entry.crc32);
  Put32(header, Clamp32(entry.size));
  Put32(header, Clamp32(entry.size));
  Put16(header, static_cast<uint16_t>(name.size()));
  Put16(header, zip64 ? 20 : 0);
  absl::StrAppend(&header, name);
  if (zip64) {
    Put16(header, kZip64ExtraId);
    Put16(header, 16);
    Put64(header, entry.size);
    Put64(header, entry.size);
  }
  VS_RETURN_IF_ERROR(file_->Append(header));
  for (absl::string_view piece : pieces) {
    VS_RETURN_IF_ERROR(file_->Append(piece));
  }
  entries_.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::Status ZipWriter::Finish() {
  const uint64_t directory_offset = file_->offset();
  std::string directory;
  for (const Entry& e : entries_) {
    std::string extra;
    if (e.size >= kMax32) {
      Put64(extra, e.size);
      Put64(extra, e.size);
    }
    if (e.offset >= kMax32) Put64(extra, e.offset);
    std::string zip64_extra;
    if (!extra.empty()) {
      Put16(zip64_extra, kZip64ExtraId);
      Put16(zip64_extra, static_cast<uint16_t>(extra.size()));
      zip64_extra += extra;
    }
    const uint16_t version = extra.empty() ? 20 : kVersionZip64;
    Put32(directory, kCentralHeaderSignature);
    Put16(directory, (3 << 8) | version);  // made by Unix
    Put16(directory, version);
    Put16(directory, 0);  // flags
    Put16(directory, kMethodStored);
    Put16(directory, kDosTime);
    Put16(directory, kDosDate);
    Put32(directory, e.crc32);
    Put32(directory, Clamp32(e.size));
    Put32(directory, Clamp32(e.size));
    Put16(directory, static_cast<uint16_t>(e.name.size()));
    Put16(directory, static_cast<uint16_t>(zip64_extra.size()));
    Put16(directory, 0);            // comment length
    Put16(directory, 0);            // disk number
    Put16(directory, 0);            // internal attributes
    Put32(directory, 0644u << 16);  // external attributes: -rw-r--r--
    Put32(directory, Clamp32(e.offset));
    absl::StrAppend(&directory, e.name, zip64_extra);
  }
  const uint64_t directory_size = directory.size();
  const uint64_t count = entries_.size();
  const bool zip64 =
      count >= kMax16 || directory_size >= kMax32 || directory_offset >= kMax32;
  std::string end;
  if (zip64) {
    const uint64_t zip64_end_offset = directory_offset + directory_size;
    Put32(end, kZip64EndSignature);
    Put64(end, 44);  // size of the rest of this record
    Put16(end, (3 << 8) | kVersionZip64);
    Put16(end, kVersionZip64);
    Put32(end, 0);  // this disk
    Put32(end, 0);  // disk with the directory
    Put64(end, count);
    Put64(end, count);
    Put64(end, directory_size);
    Put64(end, directory_offset);
    Put32(end, kZip64LocatorSignature);
    Put32(end, 0);
    Put64(end, zip64_end_offset);
    Put32(end, 1);  // disks
  }
  Put32(end, kEndSignature);
  Put16(end, 0);
  Put16(end, 0);
  Put16(end, count >= kMax16 ? kMax16 : static_cast<uint16_t>(count));
  Put16(end, count >= kMax16 ? kMax16 : static_cast<uint16_t>(count));
  Put32(end, Clamp32(directory_size));
  Put32(end, Clamp32(directory_offset));
  Put16(end, 0);  // comment length
  VS_RETURN_IF_ERROR(file_->Append(directory));
  VS_RETURN_IF_ERROR(file_->Append(end));
  return file_->Close();
}

absl::StatusOr<std::unique_ptr<ZipReader>> ZipReader::Open(
    const std::string& path) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file,
                      RandomAccessFile::Open(path));
  std::unique_ptr<ZipReader> reader(new ZipReader(path, std::move(file)));
  VS_RETURN_IF_ERROR(reader->ReadDirectory());
  return reader;
}

absl::Status ZipReader::ReadDirectory() {
  const uint64_t file_size = file_->size();
  if (file_size < kEndSize) return NotZip(path_, "too short");
  // The end record sits in the last 22 bytes plus a comment of <= 64 KiB.
  const uint64_t tail_size = std::min<uint64_t>(file_size, kEndSize + kMax16);
  VS_ASSIGN_OR_RETURN(std::string tail,
                      file_->ReadAt(file_size - tail_size, tail_size));
  size_t end_at = std::string::npos;
  for (size_t i = tail.size() - kEndSize + 1; i-- > 0;) {
    if (Get(tail, i, 4) == kEndSignature) {
      end_at = i;
      break;
    }
  }
  if (end_at == std::string::npos) {
    return NotZip(path_, "no end of central directory record");
  }
  const uint64_t end_offset = file_size - tail_size + end_at;
  uint64_t count = Get(tail, end_at + 10, 2);
  uint64_t directory_size = Get(tail, end_at + 12, 4);
  uint64_t directory_offset = Get(tail, end_at + 16, 4);
  if (end_offset >= kZip64LocatorSize) {
    VS_ASSIGN_OR_RETURN(
        std::string locator,
        file_->ReadAt(end_offset - kZip64LocatorSize, kZip64LocatorSize));
    if (Get(locator, 0, 4) == kZip64LocatorSignature) {
      const uint64_t zip64_end_offset = Get(locator, 8, 8);
      VS_ASSIGN_OR_RETURN(std::string zip64_end,
                          file_->ReadAt(zip64_end_offset, 56));
      if (Get(zip64_end, 0, 4) != kZip64EndSignature) {
        return NotZip(path_, "bad ZIP64 end of central directory record");
      }
      count = Get(zip64_end, 32, 8);
      directory_size = Get(zip64_end, 40, 8);
      directory_offset = Get(zip64_end, 48, 8);
    }
  }
  if (directory_offset + directory_size > file_size) {
    return NotZip(path_, "the central directory lies past the end");
  }
  VS_ASSIGN_OR_RETURN(std::string directory,
                      file_->ReadAt(directory_offset, directory_size));
  size_t at = 0;
  for (uint64_t i = 0; i < count; ++i) {
    if (at + 46 > directory.size() ||
        Get(directory, at, 4) != kCentralHeaderSignature) {
      return NotZip(path_, "bad central directory entry");
    }
    Member m;
    const uint64_t flags = Get(directory, at + 8, 2);
    m.method = static_cast<uint16_t>(Get(directory, at + 10, 2));
    m.crc32 = static_cast<uint32_t>(Get(directory, at + 16, 4));
    m.compressed_size = Get(directory, at + 20, 4);
    m.size = Get(directory, at + 24, 4);
    const size_t name_size = Get(directory, at + 28, 2);
    const size_t extra_size = Get(directory, at + 30, 2);
    const size_t comment_size = Get(directory, at + 32, 2);
    m.header_offset = Get(directory, at + 42, 4);
    const size_t next = at + 46 + name_size + extra_size + comment_size;
    if (next > directory.size()) {
      return NotZip(path_, "truncated central directory");
    }
    m.name = directory.substr(at + 46, name_size);
    if ((flags & 1) != 0) {
      return NotZip(path_, absl::StrCat("member ", m.name, " is encrypted"));
    }
    if (m.method != kMethodStored && m.method != kMethodDeflated) {
      return NotZip(path_,
                    absl::StrCat("member ", m.name, " uses compression method ",
                                 m.method, " (only stored and deflated)"));
    }
    // ZIP64 extra: the 64-bit values of exactly the fields marked 0xffffffff.
    size_t e = at + 46 + name_size;
    const size_t extra_end = e + extra_size;
    while (e + 4 <= extra_end) {
      const uint64_t id = Get(directory, e, 2);
      const size_t size = Get(directory, e + 2, 2);
      if (id == kZip64ExtraId) {
        size_t f = e + 4;
        for (uint64_t* field :
             {&m.size, &m.compressed_size, &m.header_offset}) {
          if (*field == kMax32 && f + 8 <= e + 4 + size) {
            *field = Get(directory, f, 8);
            f += 8;
          }
        }
      }
      e += 4 + size;
    }
    members_.push_back(std::move(m));
    at = next;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ZipReader::Read(const Member& member) const {
  VS_ASSIGN_OR_RETURN(std::string local,
                      file_->ReadAt(member.header_offset, 30));
  if (Get(local, 0, 4) != kLocalHeaderSignature) {
    return Damaged(path_, member.name, "bad local header");
  }
  const uint64_t data_offset =
      member.header_offset + 30 + Get(local, 26, 2) + Get(local, 28, 2);
  if (data_offset + member.compressed_size > file_->size()) {
    return Damaged(path_, member.name, "truncated");
  }
  VS_ASSIGN_OR_RETURN(std::string data,
                      file_->ReadAt(data_offset, member.compressed_size));
  if (member.method == kMethodDeflated) {
    // Deflate expands at most 1032:1; a larger claim is not worth allocating.
    if (member.size / 1032 > member.compressed_size + 1) {
      return Damaged(path_, member.name, "impossible uncompressed size");
    }
    std::string out(member.size, '\0');
    z_stream stream = {};
    if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) {
      return absl::InternalError("zlib inflateInit2 failed");
    }
    stream.next_in = reinterpret_cast<Bytef*>(data.data());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    // Feed at most 1 GiB per call: avail_in and avail_out are 32-bit.
    constexpr uint64_t kStep = uint64_t{1} << 30;
    uint64_t in_left = data.size(), out_left = out.size();
    int rc = Z_OK;
    while (rc == Z_OK) {
      if (stream.avail_in == 0) {
        stream.avail_in = static_cast<uInt>(std::min(in_left, kStep));
        in_left -= stream.avail_in;
      }
      if (stream.avail_out == 0) {
        stream.avail_out = static_cast<uInt>(std::min(out_left, kStep));
        out_left -= stream.avail_out;
      }
      rc = inflate(&stream, Z_NO_FLUSH);
      if (rc == Z_BUF_ERROR && (in_left > 0 || out_left > 0)) rc = Z_OK;
    }
    const uint64_t produced = stream.total_out;
    inflateEnd(&stream);
    if (rc != Z_STREAM_END || produced != member.size) {
      return Damaged(path_, member.name, "bad deflate stream");
    }
    data = std::move(out);
  } else if (member.compressed_size != member.size) {
    return Damaged(path_, member.name, "stored sizes differ");
  }
  const uint32_t crc = static_cast<uint32_t>(
      crc32_z(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()),
              data.size()));
  if (crc != member.crc32) return Damaged(path_, member.name, "CRC mismatch");
  return data;
}

}  // namespace varscope::cli
