#include "server/service/raw_calls.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/slice.h>

#include <algorithm>
#include <cctype>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "common/tensor.h"
#include "google/protobuf/descriptor.h"

namespace varscope::server {

struct ReplyBudget::State {
  explicit State(int64_t max) : max_bytes(max) {}
  const int64_t max_bytes;
  absl::Mutex mu;
  int64_t held_bytes ABSL_GUARDED_BY(mu) = 0;
  // The held buffers, and how many holds hold each.
  absl::flat_hash_map<const std::string*, int64_t> holds ABSL_GUARDED_BY(mu);
};

class ReplyBudget::Hold {
 public:
  // REQUIRES: `buffers` are counted in `state` (see Reserve).
  Hold(std::shared_ptr<State> state,
       std::vector<std::shared_ptr<const std::string>> buffers)
      : state_(std::move(state)), buffers_(std::move(buffers)) {}

  ~Hold() {
    absl::MutexLock l(&state_->mu);
    for (const std::shared_ptr<const std::string>& buffer : buffers_) {
      auto it = state_->holds.find(buffer.get());
      if (--it->second == 0) {
        state_->held_bytes -= static_cast<int64_t>(buffer->size());
        state_->holds.erase(it);
      }
    }
  }

 private:
  const std::shared_ptr<State> state_;
  const std::vector<std::shared_ptr<const std::string>> buffers_;
};

namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageLite;
using google::protobuf::Reflection;
using Traits = grpc::SerializationTraits<MessageLite>;
using Hold = ReplyBudget::Hold;

// Contents smaller than this are copied into the reply: a slice of their own
// costs more than the copy.
constexpr size_t kMinSharedBytes = 16 << 10;

// A field on the way to a nested field: its index if repeated, else -1.
struct Step {
  const FieldDescriptor* field;
  int index;
};

// `path` as `updates[0].scatter.mode`.
std::string PathString(const std::vector<Step>& path) {
  std::string out;
  for (const Step& step : path) {
    absl::StrAppend(&out, out.empty() ? "" : ".", step.field->name());
    if (step.index >= 0) absl::StrAppend(&out, "[", step.index, "]");
  }
  return out;
}

// An enum's name in words: varscope.v1.Scatter.Mode is "scatter mode".
std::string EnumWords(const EnumDescriptor& type) {
  std::string words;
  for (const char c : type.full_name().substr(type.file()->package().size())) {
    if (c == '.') continue;
    if (std::isupper(static_cast<unsigned char>(c)) && !words.empty()) {
      words += ' ';
    }
    words += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return words;
}

// Whether a message of `type` can hold an enum field, in itself or in a
// message below it; `seen` holds the types already looked at.
bool CanHoldEnums(const Descriptor& type,
                  absl::flat_hash_set<const Descriptor*>& seen) {
  if (!seen.insert(&type).second) return false;
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (field.type() == FieldDescriptor::TYPE_ENUM) return true;
    if (field.type() == FieldDescriptor::TYPE_MESSAGE &&
        CanHoldEnums(*field.message_type(), seen)) {
      return true;
    }
  }
  return false;
}

// The fields of `type` that CheckEnums looks into, in the order of their
// numbers (as Reflection::ListFields gives them): its enum fields and the
// message fields that can hold one. Found once per type: listing a
// message's set fields by reflection cost 5% of a small Assign's server
// instructions, mostly in parts that hold no enum.
const std::vector<const FieldDescriptor*>& EnumPaths(const Descriptor& type) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* found ABSL_GUARDED_BY(mu) = new absl::flat_hash_map<
      const Descriptor*,
      std::unique_ptr<const std::vector<const FieldDescriptor*>>>();
  absl::MutexLock l(&mu);
  auto [it, inserted] = found->try_emplace(&type);
  if (inserted) {
    std::vector<const FieldDescriptor*> fields;
    for (int i = 0; i < type.field_count(); ++i) {
      const FieldDescriptor* field = type.field(i);
      absl::flat_hash_set<const Descriptor*> seen;
      if (field->type() == FieldDescriptor::TYPE_ENUM ||
          (field->type() == FieldDescriptor::TYPE_MESSAGE &&
           CanHoldEnums(*field->message_type(), seen))) {
        fields.push_back(field);
      }
    }
    std::sort(fields.begin(), fields.end(),
              [](const FieldDescriptor* a, const FieldDescriptor* b) {
                return a->number() < b->number();
              });
    it->second = std::make_unique<const std::vector<const FieldDescriptor*>>(
        std::move(fields));
  }
  return *it->second;
}

// INVALID_ARGUMENT naming the first enum field under `message` (at `path`)
// whose number its enum does not define.
absl::Status CheckEnums(const Message& message, std::vector<Step>& path) {
  const Reflection& reflection = *message.GetReflection();
  for (const FieldDescriptor* field : EnumPaths(*message.GetDescriptor())) {
    const bool enum_field = field->type() == FieldDescriptor::TYPE_ENUM;
    const bool repeated = field->is_repeated();
    if (!repeated && !reflection.HasField(message, field)) continue;
    const int n = repeated ? reflection.FieldSize(message, field) : 1;
    for (int i = 0; i < n; ++i) {
      path.push_back({field, repeated ? i : -1});
      if (enum_field) {
        const int value =
            repeated ? reflection.GetRepeatedEnumValue(message, field, i)
                     : reflection.GetEnumValue(message, field);
        if (field->enum_type()->FindValueByNumber(value) == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("Unknown ", EnumWords(*field->enum_type()), " ",
                           value, " in field ", PathString(path)));
        }
      } else {
        VS_RETURN_IF_ERROR(CheckEnums(
            repeated ? reflection.GetRepeatedMessage(message, field, i)
                     : reflection.GetMessage(message, field),
            path));
      }
      path.pop_back();
    }
  }
  return absl::OkStatus();
}

// The encoded v1::Tensor of `value` up to its content's bytes.
std::string TensorHead(const VariableTable::SharedValue& value) {
  return varscope::TensorHead(value.dtype, value.dims, value.bytes->size());
}

// Builds a message's bytes as slices: small parts copied, large parts of
// shared buffers as slices that keep the reply's hold on them.
class SliceWriter {
 public:
  void Append(absl::string_view bytes) {
    if (pieces_.empty() || pieces_.back().shared) pieces_.emplace_back();
    pieces_.back().bytes.append(bytes.data(), bytes.size());
  }

  // `part`, a part of `buffer`'s bytes.
  void Share(const std::shared_ptr<const std::string>& buffer,
             absl::string_view part) {
    if (part.size() < kMinSharedBytes) {
      Append(part);
      return;
    }
    pieces_.push_back({.shared = true, .bytes = {}, .part = part});
    buffers_.push_back(buffer);
  }

  // Field `field` holding a v1::Tensor of `value`, whose head is `head`
  // (TensorHead).
  void Tensor(int field, const std::string& head,
              const VariableTable::SharedValue& value) {
    Append(FieldHead(field, head.size() + value.bytes->size()));
    Append(head);
    Share(value.bytes, *value.bytes);
  }

  // REQUIRES: `hold` holds every buffer shared.
  grpc::ByteBuffer Finish(const std::shared_ptr<const Hold>& hold) {
    std::vector<grpc::Slice> slices;
    for (const Piece& piece : pieces_) {
      if (!piece.shared) {
        slices.emplace_back(piece.bytes);
        continue;
      }
      using Holder = std::shared_ptr<const Hold>;
      slices.emplace_back(
          const_cast<char*>(piece.part.data()), piece.part.size(),
          [](void* p) { delete static_cast<Holder*>(p); }, new Holder(hold));
    }
    return grpc::ByteBuffer(slices.data(), slices.size());
  }

  absl::StatusOr<grpc::ByteBuffer> Finish(ReplyBudget& budget, bool refusable) {
    if (buffers_.empty()) return Finish(nullptr);
    VS_ASSIGN_OR_RETURN(std::shared_ptr<const Hold> hold,
                        budget.Reserve(buffers_, refusable));
    return Finish(hold);
  }

 private:
  struct Piece {
    bool shared = false;
    std::string bytes;       // when copied
    absl::string_view part;  // when shared
  };
  std::vector<Piece> pieces_;
  std::vector<std::shared_ptr<const std::string>> buffers_;
};

// A `Response` (v1::ReadResponse or v1::UpdateResponse) with `value`, its
// bytes shared, not copied, and held in `budget`.
template <typename Response>
absl::StatusOr<grpc::ByteBuffer> ValueResponseRaw(
    const VariableTable::SharedValue& value, ReplyBudget& budget,
    bool refusable) {
  SliceWriter w;
  w.Tensor(Response::kValueFieldNumber, TensorHead(value), value);
  Response rest;
  rest.set_version(value.version);
  w.Append(rest.SerializeAsString());
  return w.Finish(budget, refusable);
}

}  // namespace

ReplyBudget::ReplyBudget(int64_t max_bytes)
    : state_(std::make_shared<State>(max_bytes)) {}

absl::StatusOr<std::shared_ptr<const Hold>> ReplyBudget::Reserve(
    const std::vector<std::shared_ptr<const std::string>>& buffers,
    bool refusable) {
  std::vector<std::shared_ptr<const std::string>> distinct;
  absl::flat_hash_set<const std::string*> seen;
  for (const std::shared_ptr<const std::string>& buffer : buffers) {
    if (seen.insert(buffer.get()).second) distinct.push_back(buffer);
  }
  absl::MutexLock l(&state_->mu);
  int64_t added = 0;
  for (const std::shared_ptr<const std::string>& buffer : distinct) {
    if (!state_->holds.contains(buffer.get())) {
      added += static_cast<int64_t>(buffer->size());
    }
  }
  if (refusable && state_->held_bytes > 0 && added > 0 &&
      state_->held_bytes + added > state_->max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "Replies not yet received by their clients hold ", state_->held_bytes,
        " bytes; this one would add ", added, ", over this server's limit of ",
        state_->max_bytes,
        " (--max-pending-reply-bytes). Try again once slow readers catch up"));
  }
  for (const std::shared_ptr<const std::string>& buffer : distinct) {
    ++state_->holds[buffer.get()];
  }
  state_->held_bytes += added;
  return std::make_shared<const Hold>(state_, std::move(distinct));
}

int64_t ReplyBudget::held_bytes() const {
  absl::MutexLock l(&state_->mu);
  return state_->held_bytes;
}

absl::Status ParseRaw(const grpc::ByteBuffer& buffer, Message* request) {
  grpc::ByteBuffer consumed(buffer);  // shares the slices; parsing drains it
  if (!Traits::Deserialize(&consumed, request).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("The request does not parse as ", request->GetTypeName()));
  }
  std::vector<Step> path;
  return CheckEnums(*request, path);
}

grpc::ByteBuffer SerializeRaw(const MessageLite& message) {
  grpc::ByteBuffer buffer;
  bool own_buffer = false;
  // Serializing a valid message into memory cannot fail.
  Traits::Serialize(message, &buffer, &own_buffer).IgnoreError();
  return buffer;
}

absl::StatusOr<grpc::ByteBuffer> MessageRaw(const Message& message,
                                            ReplyBudget& budget,
                                            bool refusable) {
  if (message.ByteSizeLong() < kMinSharedBytes) return SerializeRaw(message);
  const auto bytes =
      std::make_shared<const std::string>(message.SerializeAsString());
  SliceWriter w;
  w.Share(bytes, *bytes);
  return w.Finish(budget, refusable);
}

absl::StatusOr<grpc::ByteBuffer> ReadResponseRaw(
    const VariableTable::SharedValue& value, ReplyBudget& budget) {
  return ValueResponseRaw<v1::ReadResponse>(value, budget, /*refusable=*/true);
}

absl::StatusOr<grpc::ByteBuffer> UpdateResponseRaw(
    const VariableTable::SharedValue& value, ReplyBudget& budget) {
  return ValueResponseRaw<v1::UpdateResponse>(value, budget,
                                              /*refusable=*/false);
}

absl::StatusOr<grpc::ByteBuffer> BatchReadResponseRaw(
    const std::vector<std::pair<std::string, VariableTable::SharedValue>>&
        values,
    ReplyBudget& budget) {
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
  return w.Finish(budget, /*refusable=*/true);
}

grpc::ByteBuffer TensorChunkRaw(const v1::StreamHeader* header,
                                const VariableTable::SharedValue& value,
                                size_t offset, size_t size,
                                const std::shared_ptr<const Hold>& hold) {
  SliceWriter w;
  if (header != nullptr) {
    const std::string bytes = header->SerializeAsString();
    w.Append(FieldHead(v1::TensorChunk::kHeaderFieldNumber, bytes.size()));
    w.Append(bytes);
  }
  w.Append(FieldHead(v1::TensorChunk::kDataFieldNumber, size));
  w.Share(value.bytes, absl::string_view(*value.bytes).substr(offset, size));
  return w.Finish(hold);
}

}  // namespace varscope::server
