#include "common/tensor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/shape.h"
#include "common/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace varscope {

static_assert(std::endian::native == std::endian::little,
              "Varscope stores tensors little-endian and needs a "
              "little-endian host");

Tensor::Tensor(DType dtype, std::vector<int64_t> dims)
    : dtype_(dtype), dims_(std::move(dims)) {
  bytes_.resize(static_cast<size_t>(*NumElements(dims_)) * DTypeSize(dtype_));
}

int64_t Tensor::num_elements() const {
  return static_cast<int64_t>(bytes_.size() / DTypeSize(dtype_));
}

namespace {

// INVALID_ARGUMENT unless `bytes` are a tensor of `dtype` and shape `dims`
// (see Tensor::FromBytes).
absl::Status CheckContent(DType dtype, const std::vector<int64_t>& dims,
                          absl::string_view bytes) {
  if (!IsSupportedDType(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unsupported dtype ", static_cast<int>(dtype)));
  }
  VS_RETURN_IF_ERROR(ValidateDims(dims, /*allow_unknown=*/false));
  VS_ASSIGN_OR_RETURN(const int64_t n, NumElements(dims));
  const uint64_t expected = static_cast<uint64_t>(n) * DTypeSize(dtype);
  if (bytes.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Tensor of shape ", ShapeString(dims), " and dtype ", DTypeName(dtype),
        " needs ", expected, " bytes, but ", bytes.size(), " were sent"));
  }
  if (dtype == v1::DT_BOOL) {
    // Any other byte is no bool: reading it as one is undefined.
    const auto bad = std::find_if(bytes.begin(), bytes.end(), [](char c) {
      return static_cast<unsigned char>(c) > 1;
    });
    if (bad != bytes.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "bool tensor element %d is 0x%02x, not 0 or 1", bad - bytes.begin(),
          static_cast<unsigned char>(*bad)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Tensor> Tensor::FromBytes(DType dtype, std::vector<int64_t> dims,
                                         std::string bytes) {
  VS_RETURN_IF_ERROR(CheckContent(dtype, dims, bytes));
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.bytes_ = std::move(bytes);
  return t;
}

SharedTensor SharedTensor::Of(Tensor tensor) {
  auto bytes = std::make_shared<const std::string>(tensor.ReleaseBytes());
  return {.dtype = tensor.dtype(),
          .dims = tensor.dims(),
          .bytes = *bytes,
          .owner = std::move(bytes)};
}

absl::StatusOr<SharedTensor> SharedTensor::Make(
    DType dtype, std::vector<int64_t> dims, absl::string_view bytes,
    std::shared_ptr<const void> owner) {
  VS_RETURN_IF_ERROR(CheckContent(dtype, dims, bytes));
  return SharedTensor{.dtype = dtype,
                      .dims = std::move(dims),
                      .bytes = bytes,
                      .owner = std::move(owner)};
}

std::string FieldHead(int field, size_t length) {
  using google::protobuf::internal::WireFormatLite;
  using google::protobuf::io::CodedOutputStream;
  uint8_t buffer[16];
  uint8_t* end = CodedOutputStream::WriteVarint32ToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
      buffer);
  end = CodedOutputStream::WriteVarint64ToArray(length, end);
  return std::string(reinterpret_cast<const char*>(buffer),
                     static_cast<size_t>(end - buffer));
}

std::string TensorHead(DType dtype, absl::Span<const int64_t> dims,
                       size_t content_bytes) {
  v1::Tensor meta;
  meta.set_dtype(dtype);
  meta.mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
  return meta.SerializeAsString() +
         FieldHead(v1::Tensor::kContentFieldNumber, content_bytes);
}

void TensorToProto(Tensor tensor, v1::Tensor* proto) {
  proto->set_dtype(tensor.dtype());
  auto* shape = proto->mutable_shape();
  shape->mutable_dims()->Assign(tensor.dims().begin(), tensor.dims().end());
  *proto->mutable_content() = tensor.ReleaseBytes();
}

absl::StatusOr<Tensor> TensorFromProto(v1::Tensor* proto) {
  std::vector<int64_t> dims(proto->shape().dims().begin(),
                            proto->shape().dims().end());
  return Tensor::FromBytes(proto->dtype(), std::move(dims),
                           std::move(*proto->mutable_content()));
}

Tensor TakeRows(const Tensor& t, const std::vector<int64_t>& positions) {
  std::vector<int64_t> dims = t.dims();
  const size_t row =
      dims[0] == 0 ? 0 : t.bytes().size() / static_cast<size_t>(dims[0]);
  dims[0] = static_cast<int64_t>(positions.size());
  std::string bytes;
  bytes.reserve(row * positions.size());
  for (int64_t p : positions) {
    bytes.append(t.bytes(), static_cast<size_t>(p) * row, row);
  }
  return *Tensor::FromBytes(t.dtype(), std::move(dims), std::move(bytes));
}

}  // namespace varscope
