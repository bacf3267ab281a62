#include "server/table/intents.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "common/tensor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace varscope::server {
namespace {

// What ReadStepHead finds of a serialized step request.
struct StepHead {
  v1::UpdateId id;
  std::vector<int32_t> span;
  bool intent = false;  // it carries an intent of its own
};

// Reads the id and span_shards of the serialized `Request` in `bytes`, and
// whether it has intent fields, skipping every other field without copying
// it. False if `bytes` does not hold a well-formed message.
template <typename Request>
bool ReadStepHead(const std::string& bytes, StepHead& head) {
  using google::protobuf::internal::WireFormatLite;
  constexpr int id_field = Request::kIdFieldNumber;
  constexpr int span_field = Request::kSpanShardsFieldNumber;
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()),
      static_cast<int>(bytes.size()));
  while (const uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const WireFormatLite::WireType type = WireFormatLite::GetTagWireType(tag);
    uint32_t length = 0;
    if (field == id_field &&
        type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::string id;
      if (!in.ReadVarint32(&length) ||
          !in.ReadString(&id, static_cast<int>(length)) ||
          !head.id.MergeFromString(id)) {
        return false;
      }
    } else if (field == span_field &&
               type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!in.ReadVarint32(&length)) return false;
      const auto limit = in.PushLimit(static_cast<int>(length));
      while (in.BytesUntilLimit() > 0) {
        uint32_t shard = 0;
        if (!in.ReadVarint32(&shard)) return false;
        head.span.push_back(static_cast<int32_t>(shard));
      }
      in.PopLimit(limit);
    } else if (field == span_field && type == WireFormatLite::WIRETYPE_VARINT) {
      uint32_t shard = 0;
      if (!in.ReadVarint32(&shard)) return false;
      head.span.push_back(static_cast<int32_t>(shard));
    } else {
      head.intent |= field == Request::kIntentFieldNumber;
      if (!WireFormatLite::SkipField(&in, tag)) return false;
    }
  }
  return in.ConsumedEntireMessage() &&
         in.CurrentPosition() == static_cast<int>(bytes.size());
}

// Checks that a part's request, a serialized `Request`, is of the step `id`
// over `span`, without an intent of its own.
template <typename Request>
absl::Status CheckPart(const v1::IntentPart& part, const std::string& bytes,
                       absl::string_view type, const v1::UpdateId& id,
                       const google::protobuf::RepeatedField<int32_t>& span) {
  StepHead head;
  if (!ReadStepHead<Request>(bytes, head)) {
    return absl::InvalidArgumentError(
        absl::StrCat("The intent's part for shard ", part.shard(),
                     " does not parse as a ", type));
  }
  if (head.id.client_id() != id.client_id() ||
      head.id.sequence() != id.sequence() ||
      !std::equal(head.span.begin(), head.span.end(), span.begin(),
                  span.end()) ||
      head.intent) {
    return absl::InvalidArgumentError(absl::StrCat(
        "The intent's part for shard ", part.shard(),
        " is not of the same step: its id and span_shards must be the "
        "request's, and it carries no intent"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Intents::Load(Storage& storage) {
  absl::MutexLock l(&mu_);
  return storage.LoadIntents(
      [&](std::string client_id, int64_t sequence, std::string intent) {
        mu_.AssertHeld();
        clients_[client_id].emplace(
            sequence, std::make_shared<const std::string>(std::move(intent)));
        return absl::OkStatus();
      });
}

absl::Status Intents::Check(
    const v1::UpdateId* id,
    const google::protobuf::RepeatedField<int32_t>& span,
    const google::protobuf::RepeatedPtrField<v1::IntentPart>& parts) {
  if (parts.empty()) return absl::OkStatus();
  if (id == nullptr) {
    return absl::InvalidArgumentError(
        "A request with an intent needs the step's exactly-once id");
  }
  absl::flat_hash_set<int32_t> seen;
  for (const v1::IntentPart& part : parts) {
    const int32_t shard = part.shard();
    if (span.empty() || shard == span[0] ||
        std::find(span.begin(), span.end(), shard) == span.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "The intent's part for shard ", shard,
          " is not for another shard of the step's span_shards (",
          absl::StrJoin(span, ", "), "; the first is the keeper)"));
    }
    if (!seen.insert(shard).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("The intent has two parts for shard ", shard));
    }
    switch (part.request_case()) {
      case v1::IntentPart::kBatchUpdate:
        VS_RETURN_IF_ERROR(CheckPart<v1::BatchUpdateRequest>(
            part, part.batch_update(), "BatchUpdateRequest", *id, span));
        break;
      case v1::IntentPart::kEmbeddingApply:
        VS_RETURN_IF_ERROR(CheckPart<v1::EmbeddingApplyRequest>(
            part, part.embedding_apply(), "EmbeddingApplyRequest", *id, span));
        break;
      case v1::IntentPart::REQUEST_NOT_SET:
        return absl::InvalidArgumentError(absl::StrCat(
            "The intent's part for shard ", shard, " holds no request"));
    }
  }
  return absl::OkStatus();
}

void Intents::Change::Write(StorageBatch& batch) const {
  for (const int64_t sequence : forget) batch.DeleteIntent(client_id, sequence);
  if (put.has_value()) batch.PutIntent(client_id, put->first, *put->second);
}

void Intents::Change::AddTo(DirtySet& dirty) const {
  for (const int64_t sequence : forget) {
    dirty.AddIntent(client_id, sequence, nullptr);
  }
  if (put.has_value()) dirty.AddIntent(client_id, put->first, put->second);
}

Intents::Change Intents::Prepare(
    const v1::UpdateId& id,
    const google::protobuf::RepeatedPtrField<v1::IntentPart>& parts,
    int64_t complete_below,
    const google::protobuf::RepeatedField<int64_t>& keep) {
  Change change;
  change.client_id = id.client_id();
  if (!parts.empty()) {
    v1::Intent head;
    *head.mutable_id() = id;
    head.set_written_micros(absl::ToUnixMicros(absl::Now()));
    std::string intent = head.SerializeAsString();
    // The parts appended as fields `parts` (fields of a message may come in
    // any order), each serialized once, straight from the request, into
    // room taken at once (a field head is at most 15 bytes).
    size_t bytes = intent.size();
    for (const v1::IntentPart& part : parts) bytes += 15 + part.ByteSizeLong();
    intent.reserve(bytes);
    for (const v1::IntentPart& part : parts) {
      intent += FieldHead(v1::Intent::kPartsFieldNumber, part.ByteSizeLong());
      part.AppendToString(&intent);
    }
    change.put.emplace(id.sequence(),
                       std::make_shared<const std::string>(std::move(intent)));
  }
  if (complete_below > 0) {
    absl::MutexLock l(&mu_);
    const auto it = clients_.find(id.client_id());
    if (it != clients_.end()) {
      for (auto kept = it->second.begin();
           kept != it->second.end() && kept->first < complete_below; ++kept) {
        if (std::find(keep.begin(), keep.end(), kept->first) == keep.end()) {
          change.forget.push_back(kept->first);
        }
      }
    }
  }
  return change;
}

Intents::Change Intents::Forget(const v1::UpdateId& id) {
  Change change;
  change.client_id = id.client_id();
  absl::MutexLock l(&mu_);
  const auto it = clients_.find(id.client_id());
  if (it != clients_.end() && it->second.contains(id.sequence())) {
    change.forget.push_back(id.sequence());
  }
  return change;
}

void Intents::Commit(const Change& change) {
  if (change.empty()) return;
  absl::MutexLock l(&mu_);
  auto& kept = clients_[change.client_id];
  for (const int64_t sequence : change.forget) kept.erase(sequence);
  if (change.put.has_value())
    kept.insert_or_assign(change.put->first, change.put->second);
  if (kept.empty()) clients_.erase(change.client_id);
}

int64_t Intents::Kept() const {
  absl::MutexLock l(&mu_);
  int64_t kept = 0;
  for (const auto& [client_id, intents] : clients_) {
    kept += static_cast<int64_t>(intents.size());
  }
  return kept;
}

absl::StatusOr<v1::ListIntentsResponse> Intents::List(int64_t min_age_micros,
                                                      int64_t now_micros) {
  v1::ListIntentsResponse response;
  absl::MutexLock l(&mu_);
  for (const auto& [client_id, kept] : clients_) {
    for (const auto& [sequence, serialized] : kept) {
      response.set_kept(response.kept() + 1);
      v1::Intent intent;
      if (!intent.ParseFromString(*serialized)) {
        return absl::DataLossError(absl::StrCat("The intent of update ",
                                                sequence, " of client ",
                                                client_id, " is damaged"));
      }
      if (now_micros - intent.written_micros() < min_age_micros) continue;
      *response.add_intents() = std::move(intent);
    }
  }
  std::sort(response.mutable_intents()->begin(),
            response.mutable_intents()->end(),
            [](const v1::Intent& a, const v1::Intent& b) {
              return a.written_micros() < b.written_micros();
            });
  return response;
}

}  // namespace varscope::server
