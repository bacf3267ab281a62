#include "client/tensor_bundle.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/crc32c.h"
#include "common/dtype.h"
#include "common/files.h"
#include "common/shape.h"
#include "common/status.h"
#include "leveldb/env.h"
#include "leveldb/iterator.h"
#include "leveldb/options.h"
#include "leveldb/table.h"
#include "leveldb/table_builder.h"

namespace varscope {
namespace {

// TensorFlow's tensor bundle format version (kTensorBundleVersion).
constexpr int kBundleVersion = 1;
// TensorFlow's table options for bundle indexes.
constexpr size_t kBlockSize = 262144;
constexpr int kBlockRestartInterval = 16;

// CRC-32C masking as LevelDB and TensorFlow store checksums.
uint32_t Mask(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

// OrderedCode (TensorFlow's strings::OrderedCode), the encodings slice keys
// use: an unsigned number as its length byte and big-endian bytes; a string
// with 0x00 and 0xff escaped, ended by 0x00 0x01; a signed number as its
// sign-extended big-endian bytes whose leading bits give the sign and length.
void AppendUnsigned(std::string* out, uint64_t value) {
  std::string bytes;
  for (; value > 0; value >>= 8) {
    bytes.insert(bytes.begin(), static_cast<char>(value & 0xff));
  }
  out->push_back(static_cast<char>(bytes.size()));
  out->append(bytes);
}

void AppendString(std::string* out, absl::string_view s) {
  for (const char c : s) {
    if (c == '\0') {
      out->append("\x00\xff", 2);
    } else if (c == '\xff') {
      out->append("\xff\x00", 2);
    } else {
      out->push_back(c);
    }
  }
  out->append("\x00\x01", 2);
}

void AppendSigned(std::string* out, int64_t value) {
  const uint64_t magnitude = static_cast<uint64_t>(value < 0 ? ~value : value);
  int bits = 0;
  while (bits < 64 && (magnitude >> bits) != 0) ++bits;
  // n bytes hold 7n - 1 bits of magnitude (ten bytes the 63 of any int64).
  const int length = (bits + 7) / 7;
  char buf[10];
  const char sign = value < 0 ? '\xff' : '\0';
  buf[0] = buf[1] = sign;
  for (int i = 0; i < 8; ++i) {
    buf[2 + i] =
        static_cast<char>(static_cast<uint64_t>(value) >> (56 - 8 * i));
  }
  // The header: `length` leading one bits (inverted for negative values by
  // the XOR with the sign-extended bytes).
  const uint16_t header = static_cast<uint16_t>(0xffff << (16 - length));
  char* begin = buf + sizeof(buf) - length;
  begin[0] = static_cast<char>(begin[0] ^ (header >> 8));
  if (length > 1) begin[1] = static_cast<char>(begin[1] ^ (header & 0xff));
  out->append(begin, static_cast<size_t>(length));
}

absl::Status FileSystemError(const std::error_code& error,
                             absl::string_view what) {
  return absl::ErrnoToStatus(error.value(), what);
}

absl::Status Rename(const std::string& from, const std::string& to) {
  std::error_code error;
  std::filesystem::rename(from, to, error);
  if (error) {
    return FileSystemError(error,
                           absl::StrCat("Cannot rename ", from, " to ", to));
  }
  return absl::OkStatus();
}

std::string TempSuffix() {
  return absl::StrCat(".tempstate", absl::Uniform<uint64_t>(absl::BitGen()));
}

// LevelDB's table builder writes into a string; the index is small.
class StringSink final : public leveldb::WritableFile {
 public:
  leveldb::Status Append(const leveldb::Slice& data) override {
    contents.append(data.data(), data.size());
    return leveldb::Status::OK();
  }
  leveldb::Status Close() override { return leveldb::Status::OK(); }
  leveldb::Status Flush() override { return leveldb::Status::OK(); }
  leveldb::Status Sync() override { return leveldb::Status::OK(); }

  std::string contents;
};

class StringSource final : public leveldb::RandomAccessFile {
 public:
  explicit StringSource(std::string contents)
      : contents_(std::move(contents)) {}
  leveldb::Status Read(uint64_t offset, size_t n, leveldb::Slice* result,
                       char* scratch) const override {
    if (offset > contents_.size()) {
      return leveldb::Status::IOError("read past the end of the index");
    }
    *result = leveldb::Slice(contents_.data() + offset,
                             std::min(n, contents_.size() - offset));
    return leveldb::Status::OK();
  }
  uint64_t size() const { return contents_.size(); }

 private:
  const std::string contents_;
};

std::vector<int64_t> DimsOf(const tf::TensorShapeProto& shape) {
  std::vector<int64_t> dims;
  for (const auto& dim : shape.dim()) dims.push_back(dim.size());
  return dims;
}

void SetShape(const std::vector<int64_t>& dims, tf::TensorShapeProto* shape) {
  shape->Clear();
  for (const int64_t d : dims) shape->add_dim()->set_size(d);
}

}  // namespace

std::string BundleIndexFile(absl::string_view prefix) {
  return absl::StrCat(prefix, ".index");
}

std::string BundleDataFile(absl::string_view prefix, int shard,
                           int num_shards) {
  return absl::StrFormat("%s.data-%05d-of-%05d", prefix, shard, num_shards);
}

std::string BundleSliceKey(absl::string_view name, const BundleSlice& slice) {
  std::string key;
  AppendUnsigned(&key, 0);
  AppendString(&key, name);
  AppendUnsigned(&key, slice.start.size());
  for (size_t d = 0; d < slice.start.size(); ++d) {
    AppendSigned(&key, slice.start[d]);
    AppendSigned(&key, slice.length[d]);
  }
  return key;
}

BundleWriter::BundleWriter(std::string prefix)
    : prefix_(std::move(prefix)),
      data_temp_(BundleDataFile(prefix_, 0, 1) + TempSuffix()),
      index_temp_(BundleIndexFile(prefix_) + TempSuffix()) {}

absl::StatusOr<std::unique_ptr<BundleWriter>> BundleWriter::Create(
    std::string prefix) {
  std::unique_ptr<BundleWriter> writer(new BundleWriter(std::move(prefix)));
  VS_ASSIGN_OR_RETURN(writer->data_, WritableFile::Create(writer->data_temp_));
  return writer;
}

BundleWriter::~BundleWriter() {
  if (finished_) return;
  std::error_code ignored;  // Best effort: the files were never complete.
  data_.reset();
  std::filesystem::remove(data_temp_, ignored);
  std::filesystem::remove(index_temp_, ignored);
}

absl::Status BundleWriter::Fail(absl::Status status) {
  status_ = status;
  return status;
}

absl::Status BundleWriter::Add(const std::string& name, const Tensor& value) {
  VS_RETURN_IF_ERROR(status_);
  if (name.empty()) {
    return absl::InvalidArgumentError("A checkpoint tensor needs a name");
  }
  if (entries_.contains(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Adding duplicate key: ", name));
  }
  tf::BundleEntryProto& entry = entries_[name];
  entry.set_dtype(value.dtype());
  SetShape(value.dims(), entry.mutable_shape());
  entry.set_offset(data_->offset());
  entry.set_size(static_cast<int64_t>(value.bytes().size()));
  entry.set_crc32c(Mask(Crc32c(value.bytes())));
  absl::Status written = data_->Append(value.bytes());
  if (!written.ok()) return Fail(std::move(written));
  return absl::OkStatus();
}

absl::Status BundleWriter::AddSlice(const std::string& name,
                                    const std::vector<int64_t>& full_dims,
                                    const BundleSlice& slice,
                                    const Tensor& value) {
  VS_RETURN_IF_ERROR(status_);
  const size_t rank = full_dims.size();
  bool fits = slice.start.size() == rank && slice.length.size() == rank &&
              value.dims().size() == rank;
  bool whole = true;
  for (size_t d = 0; fits && d < rank; ++d) {
    const int64_t length = slice.length[d] < 0 ? full_dims[d] : slice.length[d];
    fits = slice.start[d] >= 0 && slice.start[d] + length <= full_dims[d] &&
           value.dims()[d] == length;
    whole = whole && length == full_dims[d];
  }
  if (!fits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Slice (start ", absl::StrJoin(slice.start, ","), ", length ",
        absl::StrJoin(slice.length, ","), ") of a tensor of shape ",
        ShapeString(value.dims()), " does not fit tensor ", name, " of shape ",
        ShapeString(full_dims)));
  }
  if (whole) return Add(name, value);
  tf::BundleEntryProto& full = entries_[name];
  if (full.has_shape() &&
      (full.slices().empty() || full.dtype() != value.dtype() ||
       DimsOf(full.shape()) != full_dims)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Slices of ", name,
        " must all be slices of one tensor of one dtype and shape"));
  }
  full.set_dtype(value.dtype());
  SetShape(full_dims, full.mutable_shape());
  tf::TensorSliceProto* proto = full.add_slices();
  for (size_t d = 0; d < rank; ++d) {
    tf::TensorSliceProto::Extent* extent = proto->add_extent();
    if (slice.length[d] >= 0) {
      extent->set_start(slice.start[d]);
      extent->set_length(slice.length[d]);
    }
  }
  return Add(BundleSliceKey(name, slice), value);
}

absl::Status BundleWriter::Finish() {
  VS_RETURN_IF_ERROR(status_);
  status_ = absl::FailedPreconditionError("The checkpoint writer is finished");
  VS_RETURN_IF_ERROR(data_->Close());
  StringSink index;
  leveldb::Options options;
  options.block_size = kBlockSize;
  options.block_restart_interval = kBlockRestartInterval;
  options.compression = leveldb::kNoCompression;
  leveldb::TableBuilder builder(options, &index);
  tf::BundleHeaderProto header;
  header.set_num_shards(1);
  header.set_endianness(tf::BundleHeaderProto::LITTLE);
  header.mutable_version()->set_producer(kBundleVersion);
  builder.Add("", header.SerializeAsString());
  for (const auto& [key, entry] : entries_) {
    const std::string value = entry.SerializeAsString();
    // TensorFlow's table builder starts a new block before an entry of at
    // least two blocks' size; LevelDB's does not.
    if (key.size() + value.size() >= 2 * kBlockSize) builder.Flush();
    builder.Add(key, value);
  }
  const leveldb::Status built = builder.Finish();
  if (!built.ok()) return absl::InternalError(built.ToString());
  VS_RETURN_IF_ERROR(WriteFile(index_temp_, index.contents));
  VS_RETURN_IF_ERROR(Rename(data_temp_, BundleDataFile(prefix_, 0, 1)));
  VS_RETURN_IF_ERROR(Rename(index_temp_, BundleIndexFile(prefix_)));
  finished_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BundleReader>> BundleReader::Open(
    std::string prefix) {
  std::unique_ptr<BundleReader> reader(new BundleReader(std::move(prefix)));
  const std::string path = BundleIndexFile(reader->prefix_);
  // ReadFile reports any file it cannot open as a usage error; a missing
  // index is the one TensorFlow's callers tell apart.
  std::error_code error;
  if (!std::filesystem::exists(path, error) && !error) {
    return absl::NotFoundError(absl::StrCat(
        "No checkpoint at ", reader->prefix_, ": ", path, " does not exist"));
  }
  absl::StatusOr<std::string> contents = ReadFile(path);
  VS_RETURN_IF_ERROR(contents.status());
  auto damaged = [&](absl::string_view what) {
    return absl::DataLossError(
        absl::StrCat("Checkpoint index ", path, " is damaged: ", what));
  };
  StringSource source(*std::move(contents));
  leveldb::Table* opened = nullptr;
  const leveldb::Status status =
      leveldb::Table::Open(leveldb::Options(), &source, source.size(), &opened);
  if (!status.ok()) return damaged(status.ToString());
  const std::unique_ptr<leveldb::Table> table(opened);
  leveldb::ReadOptions read_options;
  read_options.verify_checksums = true;
  const std::unique_ptr<leveldb::Iterator> it(table->NewIterator(read_options));
  it->SeekToFirst();
  if (!it->Valid() || !it->key().empty()) {
    return damaged(it->status().ok() ? "it has no header"
                                     : it->status().ToString());
  }
  tf::BundleHeaderProto header;
  if (!header.ParseFromArray(it->value().data(),
                             static_cast<int>(it->value().size()))) {
    return damaged("its header does not parse");
  }
  if (header.endianness() != tf::BundleHeaderProto::LITTLE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Checkpoint ", reader->prefix_,
        " is big-endian; Varscope reads little-endian checkpoints"));
  }
  if (header.version().min_consumer() > kBundleVersion ||
      absl::c_linear_search(header.version().bad_consumers(), kBundleVersion)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Checkpoint ", reader->prefix_, " needs a reader of format version ",
        header.version().min_consumer(), " or later; this one reads version ",
        kBundleVersion));
  }
  if (header.num_shards() < 1) return damaged("its header has no data files");
  reader->num_shards_ = header.num_shards();
  for (it->Next(); it->Valid(); it->Next()) {
    tf::BundleEntryProto entry;
    const std::string key = it->key().ToString();
    if (!entry.ParseFromArray(it->value().data(),
                              static_cast<int>(it->value().size()))) {
      return damaged(absl::StrCat("the entry of ", key, " does not parse"));
    }
    // Slice keys start with OrderedCode's 0 (a zero byte); names never do.
    (key[0] == '\0' ? reader->slices_ : reader->tensors_)
        .emplace(key, std::move(entry));
  }
  if (!it->status().ok()) return damaged(it->status().ToString());
  return reader;
}

absl::StatusOr<Tensor> BundleReader::Read(absl::string_view key) const {
  auto found = tensors_.find(key);
  if (found == tensors_.end()) {
    found = slices_.find(key);
    if (found == slices_.end()) {
      return absl::NotFoundError(
          absl::StrCat("Key ", key, " not found in checkpoint"));
    }
  }
  const tf::BundleEntryProto& entry = found->second;
  if (!entry.slices().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("Tensor ", key, " is saved in ", entry.slices_size(),
                     " slices; read them by their keys"));
  }
  if (!IsSupportedDType(entry.dtype())) {
    return absl::UnimplementedError(absl::StrCat(
        "Tensor ", key, " of checkpoint ", prefix_, " has TensorFlow dtype ",
        entry.dtype(), ", which Varscope does not support"));
  }
  if (entry.shard_id() < 0 || entry.shard_id() >= num_shards_) {
    return absl::DataLossError(absl::StrCat(
        "The entry of ", key, " in checkpoint ", prefix_, " names data file ",
        entry.shard_id(), " of ", num_shards_));
  }
  const DType dtype = static_cast<DType>(entry.dtype());
  const std::vector<int64_t> dims = DimsOf(entry.shape());
  VS_RETURN_IF_ERROR(ValidateDims(dims, /*allow_unknown=*/false));
  VS_ASSIGN_OR_RETURN(const int64_t elements, NumElements(dims));
  const int64_t expected = elements * static_cast<int64_t>(DTypeSize(dtype));
  if (entry.size() != expected) {
    return absl::DataLossError(absl::StrCat(
        "Invalid size in bundle entry: key ", key, "; stored size ",
        entry.size(), "; expected size ", expected));
  }
  const std::string path =
      BundleDataFile(prefix_, entry.shard_id(), num_shards_);
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> file =
      RandomAccessFile::Open(path);
  if (!file.ok()) {
    return absl::DataLossError(
        absl::StrCat("Checkpoint data file ", path,
                     " cannot be read: ", file.status().message()));
  }
  absl::StatusOr<std::string> bytes = (*file)->ReadAt(
      static_cast<uint64_t>(entry.offset()), static_cast<size_t>(expected));
  if (!bytes.ok()) {
    return absl::DataLossError(
        absl::StrCat("Tensor ", key, " of checkpoint ", prefix_,
                     " cannot be read: ", bytes.status().message()));
  }
  const uint32_t stored = Unmask(entry.crc32c());
  const uint32_t actual = Crc32c(*bytes);
  if (stored != actual) {
    return absl::DataLossError(
        absl::StrCat("Checksum does not match: stored ", stored,
                     " vs. calculated on the restored bytes ", actual,
                     " (tensor ", key, " of checkpoint ", prefix_, ")"));
  }
  return Tensor::FromBytes(dtype, dims, *std::move(bytes));
}

}  // namespace varscope
