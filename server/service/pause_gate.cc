#include "server/service/pause_gate.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace varscope::server {
namespace {

constexpr size_t kMaxPauseIdBytes = 128;

std::pair<std::string, int64_t> Key(const v1::UpdateId& id) {
  return {id.client_id(), id.sequence()};
}

absl::Status CheckPauseId(absl::string_view pause_id) {
  if (pause_id.empty() || pause_id.size() > kMaxPauseIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("A pause_id must be 1 to ", kMaxPauseIdBytes,
                     " bytes, got ", pause_id.size()));
  }
  return absl::OkStatus();
}

}  // namespace

PauseGate::PauseGate(std::string where,
                     std::function<bool(const v1::UpdateId&)> applied)
    : where_(std::move(where)), applied_(std::move(applied)) {}

std::string PauseGate::PauseIdOf(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(kPauseIdMetadataKey);
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

void PauseGate::End() {
  ended_ = holder_->id;
  holder_.reset();
}

void PauseGate::Expire() {
  if (holder_.has_value() && absl::Now() >= holder_->expiry) End();
}

std::string PauseGate::Describe(const Holder& holder) const {
  return absl::StrCat(where_, " is paused",
                      holder.reason.empty() ? "" : " for ", holder.reason,
                      " (pause ", holder.id, ", ",
                      absl::FormatDuration(absl::Trunc(
                          holder.expiry - absl::Now(), absl::Milliseconds(1))),
                      " left of its lease)");
}

absl::StatusOr<PauseGate::Pass> PauseGate::Enter(const v1::UpdateId* id,
                                                 absl::string_view pause_id) {
  absl::MutexLock l(&mu_);
  Expire();
  if (!holder_.has_value()) {
    ++open_changes_;
    return Pass::kOpen;
  }
  if ((!pause_id.empty() && pause_id == holder_->id) ||
      (id != nullptr && holder_->admit.contains(Key(*id)))) {
    return Pass::kAdmitted;
  }
  return absl::UnavailableError(absl::StrCat(Describe(*holder_), "; retry"));
}

void PauseGate::Leave(Pass pass, const v1::UpdateId* id,
                      absl::Span<const int32_t> span, bool ok) {
  absl::MutexLock l(&mu_);
  if (pass == Pass::kOpen) --open_changes_;
  if (!ok || id == nullptr || span.size() < 2) return;
  if (!recent_ids_.insert(Key(*id)).second) return;
  recent_.push_back({*id, {span.begin(), span.end()}, absl::Now()});
  if (recent_.size() > kRecentSteps) {
    recent_ids_.erase(Key(recent_.front().id));
    recent_.pop_front();
  }
}

absl::StatusOr<v1::PauseResponse> PauseGate::Pause(
    const v1::PauseRequest& request) {
  if (absl::Status status = CheckPauseId(request.pause_id()); !status.ok()) {
    return status;
  }
  const absl::Duration lease = absl::Microseconds(request.lease_micros());
  if (lease < absl::Milliseconds(1) || lease > kMaxLease) {
    return absl::InvalidArgumentError(absl::StrCat(
        "A pause's lease must be 1ms to ", absl::FormatDuration(kMaxLease),
        ", got ", absl::FormatDuration(lease)));
  }
  absl::MutexLock l(&mu_);
  Expire();
  if (holder_.has_value() && holder_->id != request.pause_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(*holder_), ": pause ", request.pause_id(),
                     " must wait for it to end"));
  }
  const auto ended = [&] {
    return absl::AbortedError(absl::StrCat(
        "Pause ", request.pause_id(), " ended on ",
        absl::AsciiStrToLower(where_),
        " (resumed, or its lease ran out before it was renewed): "
        "changes went on since, so its cut is gone; take a new pause"));
  };
  if (!holder_.has_value() && ended_ == request.pause_id()) return ended();
  if (!holder_.has_value()) holder_.emplace().id = request.pause_id();
  holder_->reason = request.reason();
  holder_->lease = lease;
  holder_->expiry = absl::Now() + lease;
  for (const v1::UpdateId& id : request.admit()) {
    holder_->admit.insert(Key(id));
  }
  const auto drained = [this] {
    mu_.AssertHeld();
    return open_changes_ == 0;
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&drained), holder_->expiry)) {
    if (!holder_.has_value() || holder_->id != request.pause_id()) {
      return ended();
    }
    End();
    return absl::AbortedError(absl::StrCat(
        "The changes under way on ", absl::AsciiStrToLower(where_),
        " did not end within pause ", request.pause_id(), "'s lease of ",
        absl::FormatDuration(lease), "; the pause ended"));
  }
  if (!holder_.has_value() || holder_->id != request.pause_id()) {
    return ended();
  }
  v1::PauseResponse response;
  const absl::Time now = absl::Now();
  for (const Step& step : recent_) {
    v1::SpanningStep* out = response.add_recent();
    *out->mutable_id() = step.id;
    out->mutable_span_shards()->Add(step.span.begin(), step.span.end());
    out->set_age_micros(absl::ToInt64Microseconds(now - step.at));
  }
  for (const auto& [client, sequence] : holder_->admit) {
    v1::UpdateId id;
    id.set_client_id(client);
    id.set_sequence(sequence);
    if (recent_ids_.contains(Key(id)) || applied_(id)) {
      *response.add_applied() = std::move(id);
    }
  }
  return response;
}

absl::StatusOr<v1::ResumeResponse> PauseGate::Resume(
    absl::string_view pause_id) {
  if (absl::Status status = CheckPauseId(pause_id); !status.ok()) {
    return status;
  }
  absl::MutexLock l(&mu_);
  Expire();
  v1::ResumeResponse response;
  if (!holder_.has_value()) return response;
  if (holder_->id != pause_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        Describe(*holder_), ": pause ", pause_id, " cannot end it"));
  }
  End();
  response.set_was_held(true);
  return response;
}

absl::Status PauseGate::CheckHeld(absl::string_view pause_id) {
  absl::MutexLock l(&mu_);
  Expire();
  if (holder_.has_value() && holder_->id == pause_id) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      "Pause ", pause_id, " no longer holds on ", absl::AsciiStrToLower(where_),
      " (its lease ran out, or it was resumed): the copy would not be of "
      "its cut"));
}

}  // namespace varscope::server
