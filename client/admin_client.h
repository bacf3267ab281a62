// varscope::AdminClient: the operator calls of one varscoped server
// (AdminService): consistent checkpoints and backups of its store, pauses,
// the steps of a re-shard; and WithConsistentCut, which runs an action at
// one consistent cut of a cluster.
#ifndef VARSCOPE_CLIENT_ADMIN_CLIENT_H_
#define VARSCOPE_CLIENT_ADMIN_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "common/transport.h"
#include "varscope/v1/admin_service.grpc.pb.h"

namespace varscope {

// Thread-safe. Each call is attempted once (neither copy is idempotent) with
// `timeout` as its deadline and returns the server's status unchanged,
// DEADLINE_EXCEEDED, or UNAVAILABLE when the server cannot be reached.
// Directories are absolute paths on the server's machine.
class AdminClient {
 public:
  static std::unique_ptr<AdminClient> Connect(
      const std::string& address, absl::Duration timeout,
      const ClientSecurity& security = {});

  // A client over `stub`: Connect's, or another implementation of the
  // generated interface (a fake server in a test of the caller). SendPart
  // sends by `variables`, the server's VariableService (Connect's is on the
  // same channel; without one SendPart fails with FAILED_PRECONDITION).
  AdminClient(
      std::shared_ptr<v1::AdminService::StubInterface> stub,
      absl::Duration timeout,
      std::shared_ptr<v1::VariableService::StubInterface> variables = nullptr);

  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  absl::StatusOr<v1::CheckpointResponse> Checkpoint(
      const v1::CheckpointRequest& request);
  absl::StatusOr<v1::BackupResponse> Backup(const v1::BackupRequest& request);
  // Re-sharding (see admin_service.proto).
  absl::StatusOr<v1::ExportVariablesResponse> ExportVariables(
      const v1::ExportVariablesRequest& request);
  absl::StatusOr<v1::InstallVariablesResponse> InstallVariables(
      const v1::InstallVariablesRequest& request);
  absl::StatusOr<v1::RemoveVariablesResponse> RemoveVariables(
      const v1::RemoveVariablesRequest& request);
  absl::StatusOr<v1::SetClusterIdentityResponse> SetClusterIdentity(
      const v1::SetClusterIdentityRequest& request);
  absl::StatusOr<v1::PauseResponse> Pause(const v1::PauseRequest& request);
  absl::StatusOr<v1::ResumeResponse> Resume(const v1::ResumeRequest& request);
  // Recovery of spanning steps (see admin_service.proto and RecoverSteps).
  absl::StatusOr<v1::ListIntentsResponse> ListIntents(
      const v1::ListIntentsRequest& request);
  absl::StatusOr<v1::DeleteIntentResponse> DeleteIntent(
      const v1::DeleteIntentRequest& request);
  // Sends an intent's part (its BatchUpdate or EmbeddingApply request) to
  // this server, with `pause_id` as its varscope-pause-id metadata when not
  // empty (so that it passes that pause).
  absl::Status SendPart(const v1::IntentPart& part,
                        const std::string& pause_id);

 private:
  // Calls `method` of the stub once with a fresh deadline.
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request);

  const std::shared_ptr<v1::AdminService::StubInterface> stub_;
  const absl::Duration timeout_;
  const std::shared_ptr<v1::VariableService::StubInterface> variables_;
};

// How RecoverSteps runs.
struct RecoverOptions {
  // Only intents at least this old: a live worker normally completes its
  // own steps within seconds. Default: 0, every intent.
  absl::Duration min_age = absl::ZeroDuration();
  // The parts pass this pause (a cut's own recovery). Default: none.
  std::string pause_id;
};

// What RecoverSteps did.
struct Recovered {
  // Steps whose parts every shard of their span now holds (each applied
  // once: the parts carry the step's exactly-once id), intents forgotten.
  int completed = 0;
  // Steps a shard of whose span refuses its part for good (an error a retry
  // cannot change, e.g. NOT_FOUND for a variable deleted since): their
  // intents are forgotten and they stay as they are, "step 17 of client C:
  // shard 2 refused its part: NOT_FOUND: ...". A part refused as older
  // than its shard's exactly-once window counts as applied long ago.
  std::vector<std::string> dropped;
};

// Completes the steps split over the shards `shards` (shard i of the
// cluster is shards[i]) that their workers left half applied: asks every
// shard for the intents it keeps (ListIntents), sends each intent's parts to
// their shards again under the step's id, and then has the keeper forget the
// intent (DeleteIntent). Safe to run several at once, and again: a part
// applied already is answered as a duplicate. Needs the write role over
// every name. Returns the first error that may pass (UNAVAILABLE, a pause,
// PERMISSION_DENIED, ...) naming the shard, after trying every other
// intent; the intents of such steps are kept for a later pass.
absl::StatusOr<Recovered> RecoverSteps(const std::vector<AdminClient*>& shards,
                                       const RecoverOptions& options);

// How WithConsistentCut pauses a cluster.
struct CutOptions {
  // The id of the pause. Default: empty, a fresh random one ("cut-" and 16
  // hex digits). A caller that paused some shards under an id of its own
  // gives it to renew their pauses instead of conflicting with them.
  std::string pause_id;
  // Shown in the refusals of held-back changes: "Shard 1 of 3 is paused for
  // REASON (pause ID, 9.8s left of its lease); retry".
  std::string reason = "a cluster checkpoint";
  // How long each shard's pause holds unless renewed: the cut and `action`
  // must end within it (at most 60 s). Workers retry their held-back
  // changes meanwhile, for their retry_timeout (60 s by default).
  absl::Duration lease = absl::Seconds(10);
  // How long to wait for the missing batches of half-applied steps (their
  // workers' retries), admitted on the shards that lack them.
  absl::Duration complete_timeout = absl::Seconds(5);
  // A half-applied step applied this long ago is abandoned (its worker gave
  // up or died: no retry will come); the cut keeps it as the cluster has it.
  // Default: 70 s, past the clients' default retry_timeout of 60 s.
  absl::Duration abandoned_after = absl::Seconds(70);
  // Whether the pause must still hold on every shard when `action` returns
  // (ABORTED otherwise: the action outlasted the lease, and what it read may
  // straddle changes). False for an action that ends each shard's pause
  // itself: a Checkpoint or Backup given the cut's pause_id, which checks
  // that the pause holds when it takes its copy.
  bool check_held_after = true;
};

// What WithConsistentCut gives its action.
struct Cut {
  // The pause every shard holds: give it to Checkpoint/Backup requests (see
  // CutOptions::check_held_after), or as ClientOptions::pause_id to a client
  // whose changes are to pass the pause.
  std::string pause_id;
  // Steps split over shards that were applied on some shards of their span
  // only when the pause began, and that their workers' retries completed
  // inside the cut.
  int completed = 0;
  // Steps that the cut completed itself from their keepers' intents
  // (RecoverSteps, under the cut's pause) before looking for half-applied
  // ones: those of dead workers, and those under way.
  int recovered = 0;
  // Half-applied steps older than abandoned_after, in the cut as they are:
  // "step 17 of client C (applied on shards 0, 2; not on 1)"; and the steps
  // RecoverSteps dropped (see Recovered::dropped).
  std::vector<std::string> abandoned;
  // The shards, for the action's own calls (copies under pause_id).
  std::vector<AdminClient*> shards;
};

// Runs `action` at one consistent cut of a cluster whose shard i is
// `shards[i]`: pauses every shard (AdminService.Pause: changes are held
// back, reads go on), completes the steps its shards keep intents of
// (RecoverSteps; a step it cannot complete fails the cut with that error),
// finds the steps split over several shards that some
// shards of their span applied and others did not, admits them on the
// others and waits (up to complete_timeout) until their workers' retries
// applied them, then runs `action`, then resumes every shard, also when
// something failed. So every step is in the cut on all its shards or on
// none (but abandoned ones; see Cut).
//
// Returns the action's status, or the first error of the pause:
// FAILED_PRECONDITION when another pause holds a shard; ABORTED when a
// half-applied step is not completed within complete_timeout ("Step 17 of
// client C was applied on shards 0, 2 but not on 1 within 5s: ...") or the
// pause's lease ran out; or the AdminClient's errors, naming the shard.
// Thread-compatible: one cut at a time per cluster (a second one fails with
// FAILED_PRECONDITION).
absl::Status WithConsistentCut(
    const std::vector<AdminClient*>& shards, const CutOptions& options,
    const std::function<absl::Status(const Cut&)>& action);

// WithConsistentCut over the shards of `client` (AdminClients of its
// addresses, with its security, whose calls time out after `timeout`),
// after checking that they are the cluster's in its order
// (Client::CheckCluster, whose error it returns).
absl::Status WithConsistentCut(
    Client& client, absl::Duration timeout, const CutOptions& options,
    const std::function<absl::Status(const Cut&)>& action);

}  // namespace varscope

#endif  // VARSCOPE_CLIENT_ADMIN_CLIENT_H_
