// TensorFlow's checkpoint files (the V2 "tensor bundle" format that
// tf.compat.v1.train.Saver writes), read and written without TensorFlow.
//
// A checkpoint PREFIX is two kinds of files:
//   PREFIX.index                  a LevelDB-format table (no compression):
//                                 the empty key holds a BundleHeaderProto,
//                                 every other key a BundleEntryProto (see
//                                 protos/varscope/tf/tensor_bundle.proto)
//   PREFIX.data-SSSSS-of-NNNNN    the tensors' raw little-endian bytes, each
//                                 entry's range checked by its masked CRC-32C
// A tensor saved in slices (a partitioned variable) has an entry under its
// name listing the slices, and each slice an entry of its own under the key
// BundleSliceKey(name, slice).
//
// The writer produces what TensorFlow's BundleWriter does for the same calls,
// byte for byte: one data file, entries in name order, TensorFlow's table
// options (256 KiB blocks, restart interval 16).
#ifndef VARSCOPE_CLIENT_TENSOR_BUNDLE_H_
#define VARSCOPE_CLIENT_TENSOR_BUNDLE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/files.h"
#include "common/tensor.h"
#include "varscope/tf/tensor_bundle.pb.h"

namespace varscope {

// Where a slice sits in its tensor: per axis, the first index and the size
// (-1: the whole axis).
struct BundleSlice {
  std::vector<int64_t> start;
  std::vector<int64_t> length;
};

// The key a slice of tensor `name` is stored under (TensorFlow's
// EncodeTensorNameSlice: ordered-code encoded 0, name, rank, then per axis
// start and length).
std::string BundleSliceKey(absl::string_view name, const BundleSlice& slice);

// Writes a checkpoint. Files appear under their final names only in
// Finish(); until then they have temporary names, removed if the writer is
// destroyed unfinished. Not thread-safe.
class BundleWriter {
 public:
  // Starts a checkpoint at `prefix` (its directory must exist).
  // INVALID_ARGUMENT naming the file when the data file cannot be created
  // (see WritableFile::Create).
  static absl::StatusOr<std::unique_ptr<BundleWriter>> Create(
      std::string prefix);
  ~BundleWriter();
  BundleWriter(const BundleWriter&) = delete;
  BundleWriter& operator=(const BundleWriter&) = delete;

  // Appends `value` as tensor `name`. INVALID_ARGUMENT for the empty name or
  // a name added before; the error of the file system (UNAVAILABLE, naming
  // the file) if the write fails, after which every call fails.
  absl::Status Add(const std::string& name, const Tensor& value);

  // Appends `value` as `slice` of tensor `name` of shape `full_dims`, as
  // TensorFlow saves a part of a partitioned variable (a slice covering the
  // whole tensor is saved as by Add). INVALID_ARGUMENT if the slice does not
  // fit `full_dims`, does not have `value`'s shape, or disagrees with earlier
  // slices of `name` on dtype or full shape.
  absl::Status AddSlice(const std::string& name,
                        const std::vector<int64_t>& full_dims,
                        const BundleSlice& slice, const Tensor& value);

  // Writes the index and moves both files to their final names
  // (PREFIX.index, PREFIX.data-00000-of-00001). Returns the file system's
  // error otherwise, leaving no file under a final name.
  absl::Status Finish();

 private:
  explicit BundleWriter(std::string prefix);
  absl::Status Fail(absl::Status status);

  std::string prefix_;
  std::string data_temp_;
  std::string index_temp_;
  std::unique_ptr<WritableFile> data_;
  std::map<std::string, tf::BundleEntryProto> entries_;
  absl::Status status_;
  bool finished_ = false;
};

// Reads a checkpoint: its index at Open, tensors on demand. Thread-compatible
// (const methods may run concurrently).
class BundleReader {
 public:
  // Reads PREFIX.index. NOT_FOUND if there is no such file; INVALID_ARGUMENT
  // if it cannot be opened (see ReadFile); DATA_LOSS if it is not a readable
  // table, lacks the header or holds an unparseable entry;
  // FAILED_PRECONDITION for a big-endian checkpoint or one of a newer format
  // version than TensorFlow's 1.
  static absl::StatusOr<std::unique_ptr<BundleReader>> Open(std::string prefix);

  // The tensors by name (the keys of slices are not listed).
  const std::map<std::string, tf::BundleEntryProto, std::less<>>& tensors()
      const {
    return tensors_;
  }

  // The stored tensor `key`: a tensor saved whole, or a slice's key.
  // NOT_FOUND for a key not in the checkpoint; FAILED_PRECONDITION for a
  // tensor saved in slices (read its slices); UNIMPLEMENTED for a dtype
  // Varscope has not (e.g. string); DATA_LOSS if the data file is missing,
  // short, or the bytes fail their checksum.
  absl::StatusOr<Tensor> Read(absl::string_view key) const;

 private:
  explicit BundleReader(std::string prefix) : prefix_(std::move(prefix)) {}

  std::string prefix_;
  int num_shards_ = 1;
  std::map<std::string, tf::BundleEntryProto, std::less<>> tensors_;
  std::map<std::string, tf::BundleEntryProto, std::less<>> slices_;  // by key
};

// The file names of checkpoint `prefix`: PREFIX.index and
// PREFIX.data-SSSSS-of-NNNNN.
std::string BundleIndexFile(absl::string_view prefix);
std::string BundleDataFile(absl::string_view prefix, int shard, int num_shards);

}  // namespace varscope

#endif  // VARSCOPE_CLIENT_TENSOR_BUNDLE_H_
