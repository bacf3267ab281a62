#include "client/admin_client.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <set>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/cluster.h"
#include "common/grpc_status.h"
#include "common/status.h"

namespace varscope {

std::unique_ptr<AdminClient> AdminClient::Connect(
    const std::string& address, absl::Duration timeout,
    const ClientSecurity& security) {
  // Re-sharding moves whole variables in one message each.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  for (const auto& [name, value] : LargeMessageTransportArgs()) {
    args.SetInt(name, value);
  }
  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(address, ChannelCredentials(security), args);
  return std::make_unique<AdminClient>(v1::AdminService::NewStub(channel),
                                       timeout,
                                       v1::VariableService::NewStub(channel));
}

AdminClient::AdminClient(
    std::shared_ptr<v1::AdminService::StubInterface> stub,
    absl::Duration timeout,
    std::shared_ptr<v1::VariableService::StubInterface> variables)
    : stub_(std::move(stub)),
      timeout_(timeout),
      variables_(std::move(variables)) {}

template <typename Response, typename Request, typename Method>
absl::StatusOr<Response> AdminClient::Call(Method method,
                                           const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  Response response;
  const absl::Status status =
      FromGrpcStatus(((*stub_).*method)(&context, request, &response));
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<v1::CheckpointResponse> AdminClient::Checkpoint(
    const v1::CheckpointRequest& request) {
  return Call<v1::CheckpointResponse>(
      &v1::AdminService::StubInterface::Checkpoint, request);
}

absl::StatusOr<v1::BackupResponse> AdminClient::Backup(
    const v1::BackupRequest& request) {
  return Call<v1::BackupResponse>(&v1::AdminService::StubInterface::Backup,
                                  request);
}

absl::StatusOr<v1::ExportVariablesResponse> AdminClient::ExportVariables(
    const v1::ExportVariablesRequest& request) {
  return Call<v1::ExportVariablesResponse>(
      &v1::AdminService::StubInterface::ExportVariables, request);
}

absl::StatusOr<v1::InstallVariablesResponse> AdminClient::InstallVariables(
    const v1::InstallVariablesRequest& request) {
  return Call<v1::InstallVariablesResponse>(
      &v1::AdminService::StubInterface::InstallVariables, request);
}

absl::StatusOr<v1::RemoveVariablesResponse> AdminClient::RemoveVariables(
    const v1::RemoveVariablesRequest& request) {
  return Call<v1::RemoveVariablesResponse>(
      &v1::AdminService::StubInterface::RemoveVariables, request);
}

absl::StatusOr<v1::SetClusterIdentityResponse> AdminClient::SetClusterIdentity(
    const v1::SetClusterIdentityRequest& request) {
  return Call<v1::SetClusterIdentityResponse>(
      &v1::AdminService::StubInterface::SetClusterIdentity, request);
}

absl::StatusOr<v1::PauseResponse> AdminClient::Pause(
    const v1::PauseRequest& request) {
  return Call<v1::PauseResponse>(&v1::AdminService::StubInterface::Pause,
                                 request);
}

absl::StatusOr<v1::ResumeResponse> AdminClient::Resume(
    const v1::ResumeRequest& request) {
  return Call<v1::ResumeResponse>(&v1::AdminService::StubInterface::Resume,
                                  request);
}

absl::StatusOr<v1::ListIntentsResponse> AdminClient::ListIntents(
    const v1::ListIntentsRequest& request) {
  return Call<v1::ListIntentsResponse>(
      &v1::AdminService::StubInterface::ListIntents, request);
}

absl::StatusOr<v1::DeleteIntentResponse> AdminClient::DeleteIntent(
    const v1::DeleteIntentRequest& request) {
  return Call<v1::DeleteIntentResponse>(
      &v1::AdminService::StubInterface::DeleteIntent, request);
}

absl::Status AdminClient::SendPart(const v1::IntentPart& part,
                                   const std::string& pause_id) {
  if (variables_ == nullptr) {
    return absl::FailedPreconditionError(
        "This AdminClient has no VariableService to send a part by");
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  if (!pause_id.empty()) context.AddMetadata(kPauseIdMetadataKey, pause_id);
  grpc::Status status;
  switch (part.request_case()) {
    case v1::IntentPart::kBatchUpdate: {
      v1::BatchUpdateRequest request;
      v1::BatchUpdateResponse response;
      if (!request.ParseFromString(part.batch_update())) break;
      return FromGrpcStatus(
          variables_->BatchUpdate(&context, request, &response));
    }
    case v1::IntentPart::kEmbeddingApply: {
      v1::EmbeddingApplyRequest request;
      v1::EmbeddingApplyResponse response;
      if (!request.ParseFromString(part.embedding_apply())) break;
      return FromGrpcStatus(
          variables_->EmbeddingApply(&context, request, &response));
    }
    case v1::IntentPart::REQUEST_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("The intent's part for shard ", part.shard(),
                   " holds no request that parses"));
}

namespace {

// Whether a shard's refusal of a part holds for good: sending the same part
// again gets the same answer (a retry cannot apply it).
bool RefusedForGood(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return true;
    default:
      return false;
  }
}

absl::Status OnShard(int shard, size_t count, absl::Status status) {
  if (status.ok()) return status;
  return absl::Status(
      status.code(),
      absl::StrCat("Shard ", shard, " of ", count, ": ", status.message()));
}

}  // namespace

absl::StatusOr<Recovered> RecoverSteps(const std::vector<AdminClient*>& shards,
                                       const RecoverOptions& options) {
  const size_t n = shards.size();
  Recovered recovered;
  absl::Status first_error;
  const auto keep_error = [&](absl::Status status) {
    if (first_error.ok()) first_error = std::move(status);
  };
  v1::ListIntentsRequest list;
  list.set_min_age_micros(absl::ToInt64Microseconds(options.min_age));
  for (size_t keeper = 0; keeper < n; ++keeper) {
    absl::StatusOr<v1::ListIntentsResponse> intents =
        shards[keeper]->ListIntents(list);
    if (!intents.ok()) {
      keep_error(OnShard(keeper, n, intents.status()));
      continue;
    }
    for (const v1::Intent& intent : intents->intents()) {
      const std::string step =
          absl::StrCat("step ", intent.id().sequence(), " of client ",
                       intent.id().client_id());
      std::string dropped;
      bool passing = false;
      for (const v1::IntentPart& part : intent.parts()) {
        absl::Status sent =
            part.shard() >= 0 && static_cast<size_t>(part.shard()) < n
                ? shards[part.shard()]->SendPart(part, options.pause_id)
                : absl::FailedPreconditionError(
                      absl::StrCat("the shard list has ", n, " shards"));
        // Older than the shard's exactly-once window: applied long ago.
        if (sent.ok() ||
            (absl::IsFailedPrecondition(sent) &&
             absl::StrContains(sent.message(), "is older than the last"))) {
          continue;
        }
        if (!RefusedForGood(sent)) {
          keep_error(absl::Status(
              sent.code(),
              absl::StrCat("Completing ", step, ": ",
                           OnShard(part.shard(), n, sent).message())));
          passing = true;
          break;
        }
        if (dropped.empty()) {
          dropped = absl::StrCat(
              step, ": shard ", part.shard(),
              " refused its part: ", absl::StatusCodeToString(sent.code()),
              ": ", sent.message());
        }
      }
      if (passing) continue;
      v1::DeleteIntentRequest forget;
      *forget.mutable_id() = intent.id();
      const absl::Status deleted =
          shards[keeper]->DeleteIntent(forget).status();
      if (!deleted.ok()) {
        keep_error(OnShard(keeper, n, deleted));
        continue;
      }
      if (dropped.empty()) {
        ++recovered.completed;
      } else {
        recovered.dropped.push_back(std::move(dropped));
      }
    }
  }
  if (!first_error.ok()) return first_error;
  return recovered;
}

namespace {

using StepKey = std::pair<std::string, int64_t>;

// A step split over shards, as the paused shards reported it.
struct SpanningStep {
  std::vector<int32_t> span;
  std::set<int> applied_on;
  int64_t age_micros = 0;  // since the latest shard applied it
};

std::string DescribeStep(const StepKey& key) {
  return absl::StrCat("step ", key.second, " of client ", key.first);
}

std::string ShardList(const std::set<int>& shards) {
  return absl::StrJoin(shards, ", ");
}

// Whose span shards lack it.
std::set<int> Missing(const SpanningStep& step) {
  std::set<int> missing;
  for (const int32_t shard : step.span) {
    if (!step.applied_on.contains(shard)) missing.insert(shard);
  }
  return missing;
}

// Pauses, completes and acts; the caller resumes.
absl::Status CutAndAct(const std::vector<AdminClient*>& shards,
                       const CutOptions& options, Cut& cut,
                       std::vector<bool>& paused,
                       const std::function<absl::Status(const Cut&)>& action) {
  const size_t n = shards.size();
  const auto pause = [&](size_t i, const std::vector<StepKey>& admit)
      -> absl::StatusOr<v1::PauseResponse> {
    v1::PauseRequest request;
    request.set_pause_id(cut.pause_id);
    request.set_reason(options.reason);
    request.set_lease_micros(absl::ToInt64Microseconds(options.lease));
    for (const auto& [client, sequence] : admit) {
      v1::UpdateId* id = request.add_admit();
      id->set_client_id(client);
      id->set_sequence(sequence);
    }
    absl::StatusOr<v1::PauseResponse> response = shards[i]->Pause(request);
    if (!response.ok()) return OnShard(i, n, response.status());
    paused[i] = true;
    return response;
  };
  // Changes are held back everywhere; then the steps the keepers hold
  // intents of are completed under the pause.
  for (size_t i = 0; i < n; ++i) VS_RETURN_IF_ERROR(pause(i, {}).status());
  RecoverOptions recover;
  recover.pause_id = cut.pause_id;
  VS_ASSIGN_OR_RETURN(const Recovered recovered, RecoverSteps(shards, recover));
  cut.recovered = recovered.completed;
  cut.abandoned = recovered.dropped;
  std::map<StepKey, SpanningStep> steps;
  for (size_t i = 0; i < n; ++i) {
    VS_ASSIGN_OR_RETURN(const v1::PauseResponse response, pause(i, {}));
    for (const v1::SpanningStep& reported : response.recent()) {
      SpanningStep& step =
          steps[{reported.id().client_id(), reported.id().sequence()}];
      if (step.applied_on.empty()) {
        step.span.assign(reported.span_shards().begin(),
                         reported.span_shards().end());
        step.age_micros = reported.age_micros();
      }
      step.applied_on.insert(static_cast<int>(i));
      step.age_micros = std::min(step.age_micros, reported.age_micros());
    }
  }
  // What each shard is to complete.
  std::vector<std::vector<StepKey>> pending(n);
  for (const auto& [key, step] : steps) {
    const std::set<int> missing = Missing(step);
    if (missing.empty()) continue;
    if (absl::Microseconds(step.age_micros) >= options.abandoned_after) {
      cut.abandoned.push_back(absl::StrCat(
          DescribeStep(key), " (applied on shards ", ShardList(step.applied_on),
          "; not on ", ShardList(missing), ")"));
      continue;
    }
    for (const int shard : missing) {
      if (shard >= 0 && static_cast<size_t>(shard) < n) {
        pending[shard].push_back(key);
      }
    }
  }
  const absl::Time deadline = absl::Now() + options.complete_timeout;
  std::set<StepKey> completing;
  for (const auto& keys : pending) completing.insert(keys.begin(), keys.end());
  for (;;) {
    bool waiting = false;
    for (size_t i = 0; i < n; ++i) {
      if (pending[i].empty()) continue;
      VS_ASSIGN_OR_RETURN(const v1::PauseResponse response,
                          pause(i, pending[i]));
      std::set<StepKey> applied;
      for (const v1::UpdateId& id : response.applied()) {
        applied.insert({id.client_id(), id.sequence()});
      }
      std::erase_if(pending[i],
                    [&](const StepKey& key) { return applied.contains(key); });
      waiting = waiting || !pending[i].empty();
    }
    if (!waiting) break;
    if (absl::Now() >= deadline) {
      for (size_t i = 0; i < n; ++i) {
        if (pending[i].empty()) continue;
        const StepKey& key = pending[i].front();
        const SpanningStep& step = steps[key];
        return absl::AbortedError(absl::StrCat(
            "Step ", key.second, " of client ", key.first,
            " was applied on shards ", ShardList(step.applied_on),
            " but not on shard ", i, " within ",
            absl::FormatDuration(options.complete_timeout),
            " of the pause: its worker may have died, or be retrying slowly. "
            "Try again: a step applied more than ",
            absl::FormatDuration(options.abandoned_after),
            " ago is taken as abandoned and kept as it is"));
      }
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  cut.completed = static_cast<int>(completing.size());
  // Every lease restarts: the action has all of it.
  for (size_t i = 0; i < n; ++i) VS_RETURN_IF_ERROR(pause(i, {}).status());
  return action(cut);
}

}  // namespace

absl::Status WithConsistentCut(
    const std::vector<AdminClient*>& shards, const CutOptions& options,
    const std::function<absl::Status(const Cut&)>& action) {
  Cut cut;
  cut.shards = shards;
  cut.pause_id = options.pause_id;
  if (cut.pause_id.empty()) {
    absl::BitGen gen;
    cut.pause_id = absl::StrCat(
        "cut-", absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
  }
  std::vector<bool> paused(shards.size(), false);
  absl::Status status = CutAndAct(shards, options, cut, paused, action);
  v1::ResumeRequest resume;
  resume.set_pause_id(cut.pause_id);
  for (size_t i = 0; i < shards.size(); ++i) {
    if (!paused[i]) continue;
    absl::StatusOr<v1::ResumeResponse> resumed = shards[i]->Resume(resume);
    if (!status.ok()) continue;
    if (!resumed.ok()) {
      status = OnShard(i, shards.size(), resumed.status());
    } else if (!resumed->was_held() && options.check_held_after) {
      status = absl::AbortedError(absl::StrCat(
          "Shard ", i, " of ", shards.size(), ": the pause's lease of ",
          absl::FormatDuration(options.lease),
          " ran out before the action ended, so changes may have gone on "
          "during it; give it a longer lease"));
    }
  }
  return status;
}

absl::Status WithConsistentCut(
    Client& client, absl::Duration timeout, const CutOptions& options,
    const std::function<absl::Status(const Cut&)>& action) {
  VS_RETURN_IF_ERROR(client.CheckCluster());
  std::vector<std::unique_ptr<AdminClient>> admins;
  std::vector<AdminClient*> shards;
  for (const std::string& address : client.addresses()) {
    admins.push_back(
        AdminClient::Connect(address, timeout, client.options().security));
    shards.push_back(admins.back().get());
  }
  return WithConsistentCut(shards, options, action);
}

}  // namespace varscope
