// A dense tensor owning its bytes, and its conversion to and from the wire.
#ifndef VARSCOPE_COMMON_TENSOR_H_
#define VARSCOPE_COMMON_TENSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "varscope/v1/tensor.pb.h"

namespace varscope {

// Row-major, little-endian elements of one dtype. A value type;
// thread-compatible. The bytes live in a std::string so that they move to
// and from protobuf `bytes` fields without a copy.
class Tensor {
 public:
  // An empty float32 vector.
  Tensor() : dtype_(v1::DT_FLOAT), dims_{0} {}
  // Zero-filled. REQUIRES: a supported dtype and dims >= 0 within
  // kMaxElements.
  Tensor(DType dtype, std::vector<int64_t> dims);

  // Takes `bytes` as the content. Returns INVALID_ARGUMENT for an unsupported
  // dtype, a negative or overflowing dimension, a byte length that does not
  // match the shape, or a bool element other than 0 or 1.
  static absl::StatusOr<Tensor> FromBytes(DType dtype,
                                          std::vector<int64_t> dims,
                                          std::string bytes);

  // A tensor holding `values`. REQUIRES: values.size() == product of dims.
  template <typename T>
  static Tensor FromVector(DType dtype, std::vector<int64_t> dims,
                           absl::Span<const T> values) {
    Tensor t(dtype, std::move(dims));
    memcpy(t.bytes_.data(), values.data(), t.bytes_.size());
    return t;
  }

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t num_elements() const;
  const std::string& bytes() const { return bytes_; }
  // Releases the content, leaving the tensor empty of bytes.
  std::string ReleaseBytes() { return std::move(bytes_); }

  // The elements as T. REQUIRES: sizeof(T) == DTypeSize(dtype()).
  template <typename T>
  absl::Span<const T> flat() const {
    return absl::Span<const T>(reinterpret_cast<const T*>(bytes_.data()),
                               bytes_.size() / sizeof(T));
  }
  template <typename T>
  absl::Span<T> mutable_flat() {
    return absl::Span<T>(reinterpret_cast<T*>(bytes_.data()),
                         bytes_.size() / sizeof(T));
  }
  char* mutable_data() { return bytes_.data(); }

 private:
  DType dtype_;
  std::vector<int64_t> dims_;
  std::string bytes_;
};

// A tensor whose bytes live elsewhere: `owner` keeps them alive and
// unchanged while anyone holds it, so that they can be sent without being
// copied. A value type; thread-compatible.
struct SharedTensor {
  // Takes over `tensor`'s bytes.
  static SharedTensor Of(Tensor tensor);
  // A tensor of `bytes`, which `owner` keeps alive. INVALID_ARGUMENT as
  // Tensor::FromBytes.
  static absl::StatusOr<SharedTensor> Make(DType dtype,
                                           std::vector<int64_t> dims,
                                           absl::string_view bytes,
                                           std::shared_ptr<const void> owner);

  DType dtype = v1::DT_FLOAT;
  std::vector<int64_t> dims;
  absl::string_view bytes;
  std::shared_ptr<const void> owner;
};

// The encoded tag and length of the length-delimited field `field`.
std::string FieldHead(int field, size_t length);

// The encoded v1::Tensor of dtype `dtype` and shape `dims` up to its
// content: dtype, shape, and the content's tag and length `content_bytes`.
// Followed by the content, it parses as the whole v1::Tensor.
std::string TensorHead(DType dtype, absl::Span<const int64_t> dims,
                       size_t content_bytes);

// Moves `tensor` into `proto` (the tensor's bytes are left empty).
void TensorToProto(Tensor tensor, v1::Tensor* proto);
// Moves the proto's content into a checked Tensor (see Tensor::FromBytes).
absl::StatusOr<Tensor> TensorFromProto(v1::Tensor* proto);
// Rows `positions` of `t` along its first axis, in that order.
// REQUIRES: `t` has a first axis and every position is in it.
Tensor TakeRows(const Tensor& t, const std::vector<int64_t>& positions);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_TENSOR_H_
