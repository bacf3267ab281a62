#include "server/raw_calls.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/slice.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace varscope::server {
namespace {

using google::protobuf::MessageLite;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;
using Traits = grpc::SerializationTraits<MessageLite>;

// Contents smaller than this are copied into the reply: a slice of their own
// costs more than the copy.
constexpr size_t kMinSharedBytes = 16 << 10;

// The tag and length of the length-delimited field `field`.
std::string FieldHead(int field, size_t length) {
  uint8_t buffer[16];
  uint8_t* end = CodedOutputStream::WriteVarint32ToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
      buffer);
  end = CodedOutputStream::WriteVarint64ToArray(length, end);
  return std::string(reinterpret_cast<const char*>(buffer),
                     static_cast<size_t>(end - buffer));
}

// The encoded v1::Tensor of `value` up to its content's bytes: dtype, shape,
// and the content's tag and length.
std::string TensorHead(const VariableTable::SharedValue& value) {
  v1::Tensor meta;
  meta.set_dtype(value.dtype);
  meta.mutable_shape()->mutable_dims()->Assign(value.dims.begin(),
                                               value.dims.end());
  return meta.SerializeAsString() +
         FieldHead(v1::Tensor::kContentFieldNumber, value.bytes->size());
}

// Builds a message's bytes as slices: small parts copied into one buffer,
// large tensor contents as slices holding a reference to their buffer.
class SliceWriter {
 public:
  void Append(const std::string& bytes) { pending_ += bytes; }

  // Field `field` holding a v1::Tensor of `value`, whose head is `head`
  // (TensorHead).
  void Tensor(int field, const std::string& head,
              const VariableTable::SharedValue& value) {
    Append(FieldHead(field, head.size() + value.bytes->size()));
    Append(head);
    Shared(value.bytes);
  }

  grpc::ByteBuffer Finish() {
    Flush();
    return grpc::ByteBuffer(slices_.data(), slices_.size());
  }

 private:
  void Shared(const std::shared_ptr<const std::string>& bytes) {
    if (bytes->size() < kMinSharedBytes) {
      pending_ += *bytes;
      return;
    }
    Flush();
    using Holder = std::shared_ptr<const std::string>;
    auto* holder = new Holder(bytes);
    slices_.emplace_back(
        const_cast<char*>(bytes->data()), bytes->size(),
        [](void* p) { delete static_cast<Holder*>(p); }, holder);
  }

  void Flush() {
    if (pending_.empty()) return;
    slices_.emplace_back(pending_);
    pending_.clear();
  }

  std::string pending_;
  std::vector<grpc::Slice> slices_;
};

}  // namespace

absl::Status ParseRaw(const grpc::ByteBuffer& buffer, MessageLite* message) {
  grpc::ByteBuffer consumed(buffer);  // shares the slices; parsing drains it
  if (!Traits::Deserialize(&consumed, message).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("The request does not parse as ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

grpc::ByteBuffer SerializeRaw(const MessageLite& message) {
  grpc::ByteBuffer buffer;
  bool own_buffer = false;
  // Serializing a valid message into memory cannot fail.
  Traits::Serialize(message, &buffer, &own_buffer).IgnoreError();
  return buffer;
}

grpc::ByteBuffer ReadResponseRaw(const VariableTable::SharedValue& value) {
  SliceWriter w;
  w.Tensor(v1::ReadResponse::kValueFieldNumber, TensorHead(value), value);
  v1::ReadResponse rest;
  rest.set_version(value.version);
  w.Append(rest.SerializeAsString());
  return w.Finish();
}

grpc::ByteBuffer BatchReadResponseRaw(
    const std::vector<std::pair<std::string, VariableTable::SharedValue>>&
        values) {
  constexpr int kValueField = v1::BatchReadResponse::Entry::kValueFieldNumber;
  SliceWriter w;
  for (const auto& [name, value] : values) {
    v1::BatchReadResponse::Entry rest;
    rest.set_name(name);
    rest.set_version(value.version);
    const std::string head = rest.SerializeAsString();
    const std::string tensor_head = TensorHead(value);
    const size_t tensor_bytes = tensor_head.size() + value.bytes->size();
    const size_t entry_bytes = head.size() +
                               FieldHead(kValueField, tensor_bytes).size() +
                               tensor_bytes;
    w.Append(
        FieldHead(v1::BatchReadResponse::kEntriesFieldNumber, entry_bytes));
    w.Append(head);
    w.Tensor(kValueField, tensor_head, value);
  }
  return w.Finish();
}

}  // namespace varscope::server
