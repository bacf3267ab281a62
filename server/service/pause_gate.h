// The pause gate of one server: holds every change back while a pause
// (AdminService.Pause) holds, so that a coordinator can take a copy of a
// whole cluster at one consistent cut, and remembers the recent steps split
// over several shards that this server applied.
#ifndef VARSCOPE_SERVER_SERVICE_PAUSE_GATE_H_
#define VARSCOPE_SERVER_SERVICE_PAUSE_GATE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/cluster.h"
#include "grpcpp/server_context.h"
#include "varscope/v1/admin_service.pb.h"

namespace varscope::server {

// Thread-safe.
class PauseGate {
 public:
  static constexpr absl::Duration kMaxLease = absl::Seconds(60);
  static constexpr size_t kRecentSteps = 4096;

  // `where` names this server in errors ("Shard 1 of 3", "This server");
  // `applied` tells whether the update numbered with an id was applied here
  // (the exactly-once records).
  PauseGate(std::string where,
            std::function<bool(const v1::UpdateId&)> applied);

  // Whether a change entered while no pause held (Pause waits for those).
  enum class Pass { kOpen, kAdmitted };

  // Before a change (`id` null for an unnumbered one; `pause_id` from the
  // call's kPauseIdMetadataKey, else empty). UNAVAILABLE ("Shard 1 of 3 is
  // paused for REASON; retry") while a pause holds, unless `id` is admitted
  // or `pause_id` is the holding pause's. After a pass, call Leave.
  absl::StatusOr<Pass> Enter(const v1::UpdateId* id,
                             absl::string_view pause_id);
  // After a change Enter let through; `ok`: it succeeded (or was a repeat
  // of an applied one). With a span of two or more shards, remembers the
  // step as applied here.
  void Leave(Pass pass, const v1::UpdateId* id, absl::Span<const int32_t> span,
             bool ok);

  // Takes (or renews, same pause_id: adds the admits, restarts the lease)
  // the pause, waits for the changes that entered before it, and answers the
  // recent spanning steps and which admitted ids are applied.
  // INVALID_ARGUMENT for a pause_id not of 1 to 128 bytes or a lease not in
  // [1 ms, kMaxLease]; FAILED_PRECONDITION while another pause holds;
  // ABORTED for the id of a pause that ended (its cut is gone) or when the
  // changes under way do not end within the lease (the pause ends).
  absl::StatusOr<v1::PauseResponse> Pause(const v1::PauseRequest& request);
  // Ends the pause `pause_id` if it holds. FAILED_PRECONDITION if another
  // holds; INVALID_ARGUMENT for an empty id.
  absl::StatusOr<v1::ResumeResponse> Resume(absl::string_view pause_id);
  // OK if `pause_id` holds; ABORTED otherwise (a copy would not be of its
  // cut).
  absl::Status CheckHeld(absl::string_view pause_id);

  // The kPauseIdMetadataKey value of a call ("" without one).
  static std::string PauseIdOf(const grpc::ServerContextBase& context);

 private:
  struct Holder {
    std::string id;
    std::string reason;
    absl::Duration lease;
    absl::Time expiry;
    absl::flat_hash_set<std::pair<std::string, int64_t>> admit;
  };
  struct Step {
    v1::UpdateId id;
    std::vector<int32_t> span;
    absl::Time at;
  };
  // Ends the pause if its lease ran out.
  void Expire() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void End() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string Describe(const Holder& holder) const;

  const std::string where_;
  const std::function<bool(const v1::UpdateId&)> applied_;
  absl::Mutex mu_;
  std::optional<Holder> holder_ ABSL_GUARDED_BY(mu_);
  std::string ended_ ABSL_GUARDED_BY(mu_);  // the last pause that ended
  int64_t open_changes_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Step> recent_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::pair<std::string, int64_t>> recent_ids_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_PAUSE_GATE_H_
