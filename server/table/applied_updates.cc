#include "server/table/applied_updates.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace varscope::server {
namespace {

constexpr size_t kMaxClientIdLength = 128;
constexpr size_t kMaxKeptValueBytes = 64 << 10;

absl::Status ValidateId(const v1::UpdateId& id) {
  if (id.client_id().empty() || id.client_id().size() > kMaxClientIdLength ||
      id.client_id().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("An update's client_id must be 1 to ", kMaxClientIdLength,
                     " bytes without NUL"));
  }
  if (id.sequence() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "An update's sequence must be positive, not ", id.sequence()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AppliedUpdates::Load(Storage& storage) {
  absl::MutexLock l(&mu_);
  return storage.LoadApplied(
      [&](std::string client_id, int64_t sequence, std::string result) {
        mu_.AssertHeld();
        clients_[client_id].applied.emplace(sequence, std::move(result));
        return absl::OkStatus();
      });
}

absl::StatusOr<std::optional<v1::BatchUpdateResponse>> AppliedUpdates::Begin(
    const v1::UpdateId& id) {
  VS_RETURN_IF_ERROR(ValidateId(id));
  const int64_t seq = id.sequence();
  absl::MutexLock l(&mu_);
  auto not_in_flight = [&] {
    mu_.AssertHeld();
    return !clients_[id.client_id()].in_flight.contains(seq);
  };
  mu_.Await(absl::Condition(&not_in_flight));
  Client& client = clients_[id.client_id()];
  if (auto it = client.applied.find(seq); it != client.applied.end()) {
    v1::BatchUpdateResponse result;
    if (!result.ParseFromString(it->second)) {
      return absl::DataLossError(absl::StrCat("The recorded result of update ",
                                              seq, " of client ",
                                              id.client_id(), " is damaged"));
    }
    result.set_duplicate(true);
    return result;
  }
  if (!client.applied.empty() &&
      seq <= client.applied.rbegin()->first - window_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Update ", seq, " of client ", id.client_id(),
        " is older than the last ", window_,
        " this server remembers; it cannot tell whether it was applied"));
  }
  client.in_flight.insert(seq);
  return std::nullopt;
}

std::string AppliedUpdates::Serialize(
    const v1::BatchUpdateResponse& result) const {
  if (result.ByteSizeLong() <= kMaxKeptValueBytes) {
    return result.SerializeAsString();
  }
  v1::BatchUpdateResponse versions_only;
  *versions_only.mutable_versions() = result.versions();
  return versions_only.SerializeAsString();
}

AppliedUpdates::Record AppliedUpdates::ToRecord(
    const v1::UpdateId& id, const v1::BatchUpdateResponse& result) {
  Record record{Serialize(result), {}};
  absl::MutexLock l(&mu_);
  const Client& client = clients_[id.client_id()];
  int64_t newest = id.sequence();
  if (!client.applied.empty()) {
    newest = std::max(newest, client.applied.rbegin()->first);
  }
  for (auto it = client.applied.begin();
       it != client.applied.end() && it->first <= newest - window_; ++it) {
    record.forget.push_back(it->first);
  }
  return record;
}

bool AppliedUpdates::Applied(const v1::UpdateId& id) {
  absl::MutexLock l(&mu_);
  const auto it = clients_.find(id.client_id());
  if (it == clients_.end()) return false;
  const absl::btree_map<int64_t, std::string>& applied = it->second.applied;
  return applied.contains(id.sequence()) ||
         (!applied.empty() &&
          id.sequence() <= applied.rbegin()->first - window_);
}

void AppliedUpdates::End(const v1::UpdateId& id,
                         const v1::BatchUpdateResponse* applied) {
  absl::MutexLock l(&mu_);
  Client& client = clients_[id.client_id()];
  client.in_flight.erase(id.sequence());
  if (applied == nullptr) return;
  client.applied[id.sequence()] = Serialize(*applied);
  Trim(client);
}

void AppliedUpdates::Trim(Client& client) const {
  const int64_t newest = client.applied.rbegin()->first;
  while (client.applied.begin()->first <= newest - window_) {
    client.applied.erase(client.applied.begin());
  }
}

std::vector<v1::AppliedRecord> AppliedUpdates::Export() {
  std::vector<v1::AppliedRecord> records;
  absl::MutexLock l(&mu_);
  for (const auto& [client_id, client] : clients_) {
    for (const auto& [sequence, result] : client.applied) {
      v1::AppliedRecord& record = records.emplace_back();
      record.set_client_id(client_id);
      record.set_sequence(sequence);
      record.set_result(result);
    }
  }
  return records;
}

absl::StatusOr<std::vector<v1::AppliedRecord>> AppliedUpdates::Missing(
    const google::protobuf::RepeatedPtrField<v1::AppliedRecord>& records) {
  std::vector<v1::AppliedRecord> missing;
  absl::MutexLock l(&mu_);
  for (const v1::AppliedRecord& record : records) {
    v1::UpdateId id;
    id.set_client_id(record.client_id());
    id.set_sequence(record.sequence());
    VS_RETURN_IF_ERROR(ValidateId(id));
    auto it = clients_.find(record.client_id());
    if (it != clients_.end() &&
        (it->second.applied.contains(record.sequence()) ||
         (!it->second.applied.empty() &&
          record.sequence() <= it->second.applied.rbegin()->first - window_))) {
      continue;
    }
    missing.push_back(record);
  }
  return missing;
}

void AppliedUpdates::Add(const std::vector<v1::AppliedRecord>& records) {
  absl::MutexLock l(&mu_);
  for (const v1::AppliedRecord& record : records) {
    Client& client = clients_[record.client_id()];
    client.applied[record.sequence()] = record.result();
    Trim(client);
  }
}

}  // namespace varscope::server
