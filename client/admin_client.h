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
  // generated interface (a fake server in a test of the caller).
  AdminClient(std::shared_ptr<v1::AdminService::StubInterface> stub,
              absl::Duration timeout);

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

 private:
  // Calls `method` of the stub once with a fresh deadline.
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request);

  const std::shared_ptr<v1::AdminService::StubInterface> stub_;
  const absl::Duration timeout_;
};

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
  // Half-applied steps older than abandoned_after, in the cut as they are:
  // "step 17 of client C (applied on shards 0, 2; not on 1)".
  std::vector<std::string> abandoned;
  // The shards, for the action's own calls (copies under pause_id).
  std::vector<AdminClient*> shards;
};

// Runs `action` at one consistent cut of a cluster whose shard i is
// `shards[i]`: pauses every shard (AdminService.Pause: changes are held
// back, reads go on), finds the steps split over several shards that some
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
