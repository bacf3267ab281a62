#include "client/client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/admin_client.h"
#include "common/cluster.h"
#include "common/grpc_status.h"
#include "common/names.h"
#include "common/random.h"
#include "common/status.h"
#include "common/transport.h"

namespace varscope {
namespace {

// How many times a call follows a re-shard of its cluster before it gives
// up (another re-shard each time).
constexpr int kMaxRefreshes = 3;

// Inside a routed call (Client::Routed) on this thread: nested calls run
// under its hold of the shard list.
thread_local int routed_depth = 0;

absl::StatusOr<UpdateResult> ToUpdateResult(v1::UpdateResponse& response) {
  UpdateResult result;
  result.version = response.version();
  if (response.has_value()) {
    VS_ASSIGN_OR_RETURN(result.value,
                        TensorFromProto(response.mutable_value()));
  }
  return result;
}

template <typename Request>
void SetUpdateFields(absl::string_view name, const UpdateOptions& options,
                     Request& request) {
  request.set_name(std::string(name));
  if (options.expected_version.has_value()) {
    request.set_expected_version(*options.expected_version);
  }
  request.set_return_value(options.return_value);
}

// The header of a WriteStream doing what `request` asks.
template <typename Request>
v1::StreamHeader StreamHeaderOf(const Request& request, bool add) {
  v1::StreamHeader header;
  header.set_name(request.name());
  header.set_add(add);
  if (request.has_expected_version()) {
    header.set_expected_version(request.expected_version());
  }
  if (request.has_id()) *header.mutable_id() = request.id();
  return header;
}

// A random id. Not from absl::BitGen: its seeds come from a process-wide
// pool that processes forked from one process share, which would give their
// clients the same ids (and the server would drop their updates as
// duplicates).
std::string NewClientId() {
  std::random_device device;
  auto word = [&device] {
    return (uint64_t{device()} << 32) | uint64_t{device()};
  };
  return absl::StrFormat("%016x%016x", word(), word());
}

// Stubs of `channels`, in order.
std::vector<std::shared_ptr<v1::VariableService::StubInterface>> StubsOf(
    const std::vector<std::shared_ptr<grpc::ChannelInterface>>& channels) {
  std::vector<std::shared_ptr<v1::VariableService::StubInterface>> stubs;
  for (const std::shared_ptr<grpc::ChannelInterface>& channel : channels) {
    stubs.push_back(v1::VariableService::NewStub(channel));
  }
  return stubs;
}

// `prefix` followed by `tensor`'s bytes, as a slice over them that holds
// their owner until gRPC is done with it.
grpc::ByteBuffer WithContent(const std::string& prefix,
                             const SharedTensor& tensor) {
  using Owner = std::shared_ptr<const void>;
  grpc::Slice slices[] = {
      grpc::Slice(prefix),
      grpc::Slice(
          const_cast<char*>(tensor.bytes.data()), tensor.bytes.size(),
          [](void* owner) { delete static_cast<Owner*>(owner); },
          new Owner(tensor.owner))};
  return grpc::ByteBuffer(slices, tensor.bytes.empty() ? 1 : 2);
}

// The name of a global step variable: `name`, or "global_step" if empty.
std::string GlobalStepName(const std::string& name) {
  return name.empty() ? "global_step" : name;
}

// The key a listing resumes at to list `entry` next: a variable's name, or a
// child scope's name and '/' (which sorts before everything under it).
std::string ResumeKey(const v1::ListVariablesResponse::Entry& entry) {
  return entry.is_scope() ? absl::StrCat(entry.name(), "/") : entry.name();
}

// One page of a cluster's listing from one page of each shard, all listed
// with `request`: the entries below every shard's next-page token (so none
// is missed or listed twice), in name order, a child scope once.
v1::ListVariablesResponse MergePages(
    const v1::ListVariablesRequest& request,
    std::vector<v1::ListVariablesResponse> pages) {
  std::optional<std::string> limit;
  size_t page_size = static_cast<size_t>(request.page_size());
  for (const v1::ListVariablesResponse& page : pages) {
    if (page.next_page_token().empty()) continue;
    std::string token = page.next_page_token();
    if (!request.recursive()) {
      // The shard stopped inside a child scope it has not listed yet.
      const size_t start =
          request.scope().empty() ? 0 : request.scope().size() + 1;
      const size_t slash = token.find('/', start);
      if (slash != std::string::npos) token.resize(slash + 1);
    }
    if (!limit.has_value() || token < *limit) limit = std::move(token);
    // A page that ends early is full: its length is the server's page size.
    if (request.page_size() == 0) {
      page_size = std::max(page_size, static_cast<size_t>(page.entries_size()));
    }
  }
  std::map<std::string, v1::ListVariablesResponse::Entry> merged;
  for (v1::ListVariablesResponse& page : pages) {
    for (v1::ListVariablesResponse::Entry& entry : *page.mutable_entries()) {
      std::string key = ResumeKey(entry);
      if (limit.has_value() && key >= *limit) continue;
      merged.try_emplace(std::move(key), std::move(entry));
    }
  }
  if (page_size == 0) page_size = merged.size();
  v1::ListVariablesResponse response;
  for (auto& [key, entry] : merged) {
    if (static_cast<size_t>(response.entries_size()) == page_size) {
      response.set_next_page_token(key);
      return response;
    }
    *response.add_entries() = std::move(entry);
  }
  if (limit.has_value()) response.set_next_page_token(*limit);
  return response;
}

// Every paginated walk: `fn` on each page `list` fills for `request`,
// passing each page's token back, until the last page.
absl::Status WalkPages(
    v1::ListVariablesRequest request,
    absl::FunctionRef<absl::Status(const v1::ListVariablesRequest&,
                                   v1::ListVariablesResponse*)>
        list,
    absl::FunctionRef<absl::Status(v1::ListVariablesResponse&)> fn) {
  for (;;) {
    v1::ListVariablesResponse page;
    VS_RETURN_IF_ERROR(list(request, &page));
    std::string next = page.next_page_token();  // `fn` may move from `page`
    VS_RETURN_IF_ERROR(fn(page));
    if (next.empty()) return absl::OkStatus();
    request.set_page_token(std::move(next));
  }
}

// The span of a step with id `id` over the shards `parts` (ascending): the
// same shards, starting at the step's keeper (see AttachIntent), which
// turns with the step's sequence so that a client's steps spread their
// keepers over the shards (its first step is kept by the first shard).
std::vector<int> StepSpan(std::vector<int> parts, const v1::UpdateId& id) {
  if (parts.size() > 1) {
    const uint64_t turn = static_cast<uint64_t>(id.sequence() - 1);
    std::rotate(
        parts.begin(),
        parts.begin() + static_cast<std::ptrdiff_t>(turn % parts.size()),
        parts.end());
  }
  return parts;
}

// Marks a step's per-shard requests with the shards it went to
// (span_shards, see StepSpan), when more than one: a cluster pause
// completes such a step that some of its shards applied
// (AdminService.Pause).
template <typename Request>
void MarkSpan(const std::vector<int>& span, Request& request) {
  if (span.size() < 2 || !request.has_id()) return;
  request.mutable_span_shards()->Assign(span.begin(), span.end());
}

// Gives the first shard of a step's span (its keeper) the other shards'
// requests of `requests` (BatchUpdateRequest.intent), which it stores with
// its own part: a recovery pass completes the step from them if this
// worker dies before every shard applied its part. `field` is the
// IntentPart's field of a Request.
template <typename Request>
void AttachIntent(const std::vector<int>& span, std::vector<Request>& requests,
                  std::string* (v1::IntentPart::*field)()) {
  if (span.size() < 2 || !requests[span[0]].has_id()) return;
  Request& keeper = requests[span[0]];
  for (size_t k = 1; k < span.size(); ++k) {
    v1::IntentPart* part = keeper.add_intent();
    part->set_shard(span[k]);
    requests[span[k]].SerializeToString((part->*field)());
  }
}

// "N updates of a, b, c, ..." (up to three names).
std::string UpdatesSubject(const v1::BatchUpdateRequest& batch) {
  if (batch.updates().empty()) return "an empty batch";
  std::vector<absl::string_view> names;
  for (const v1::Update& update : batch.updates()) {
    if (names.size() == 3) {
      names.push_back("...");
      break;
    }
    names.push_back(update.name());
  }
  return absl::StrCat(
      batch.updates_size(),
      batch.updates_size() == 1 ? " update of " : " updates of ",
      absl::StrJoin(names, ", "));
}

// Runs `part(i)` for every i in `parts` at once (the first on this thread)
// and returns the first error in the order of `parts`.
absl::Status InParallel(const std::vector<int>& parts,
                        const std::function<absl::Status(int)>& part) {
  std::vector<absl::Status> statuses(parts.size());
  std::vector<std::thread> threads;
  for (size_t k = 1; k < parts.size(); ++k) {
    threads.emplace_back([&, k] { statuses[k] = part(parts[k]); });
  }
  if (!parts.empty()) statuses[0] = part(parts[0]);
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace

bool Client::StreamIt(const SharedTensor& tensor,
                      const UpdateOptions& options) const {
  // Streams reply with a version only: values come back by unary calls.
  return !options.return_value && static_cast<int64_t>(tensor.bytes.size()) >
                                      options_.stream_threshold_bytes;
}

std::shared_ptr<grpc::ChannelInterface> Client::NewChannel(
    const std::string& address, const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  for (const auto& [name, value] : LargeMessageTransportArgs()) {
    args.SetInt(name, value);
  }
  if (options.own_connection) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  }
  // Reconnect to a restarted server within 0.5 s (gRPC's default backoff
  // grows to 2 minutes), and give up a connection attempt after 1 s (the
  // minimum also bounds each attempt) rather than 20 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(address,
                                   ChannelCredentials(options.security), args);
}

std::unique_ptr<Client> Client::Connect(const std::string& address,
                                        const ClientOptions& options) {
  // gRPC 1.51 completes a reconnection attempt started by its backoff timer
  // (not by a call) only when its backup poller runs, every 5 s by default:
  // calls waited up to 5 s for a restarted server. Poll every 100 ms unless
  // the user chose otherwise; it counts if gRPC is not initialized yet.
  static const bool polling = [] {
    return setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100",
                  /*overwrite=*/0) == 0;
  }();
  (void)polling;
  std::vector<std::string> addresses = absl::StrSplit(address, ',');
  std::vector<std::shared_ptr<grpc::ChannelInterface>> channels;
  for (const std::string& shard : addresses) {
    channels.push_back(NewChannel(shard, options));
  }
  return std::make_unique<Client>(std::move(channels), options,
                                  std::move(addresses));
}

Client::Client(std::vector<std::shared_ptr<grpc::ChannelInterface>> channels,
               const ClientOptions& options, std::vector<std::string> addresses)
    : channels_(std::move(channels)),
      shards_(StubsOf(channels_)),
      addresses_(std::move(addresses)),
      shard_count_(static_cast<int>(shards_.size())),
      options_(options),
      cluster_checked_(shards_.size() == 1),
      client_id_(NewClientId()) {
  for (size_t i = addresses_.size(); i < shards_.size(); ++i) {
    addresses_.push_back(absl::StrCat("shard ", i));
  }
}

Client::Rpc Client::On(absl::string_view method, absl::string_view name) const {
  return {ShardOf(name, num_shards()), method, std::string(name)};
}

std::string Client::Server(int shard) const {
  if (num_shards() == 1) return absl::StrCat("varscoped at ", addresses_[0]);
  return absl::StrCat("shard ", shard, " of ", num_shards(), " at ",
                      addresses_[shard]);
}

bool Client::Identify(v1::UpdateId* id) {
  if (!options_.exactly_once) return false;
  id->set_client_id(client_id_);
  id->set_sequence(sequence_.fetch_add(1) + 1);
  return true;
}

bool Client::BeginStep(v1::UpdateId* id) {
  // Numbered and recorded at once: a concurrent step's complete_below never
  // passes a step numbered but not recorded yet.
  absl::MutexLock l(&steps_mu_);
  if (id->client_id().empty() && !Identify(id)) return false;
  if (id->client_id() == client_id_) {
    open_steps_.insert(id->sequence());
    failed_steps_.erase(id->sequence());
  }
  return true;
}

void Client::EndStep(const v1::UpdateId& id, bool failed) {
  if (id.client_id() != client_id_) return;
  absl::MutexLock l(&steps_mu_);
  open_steps_.erase(id.sequence());
  if (!failed) return;
  failed_steps_.insert(id.sequence());
  if (failed_steps_.size() > kMaxFailedSteps) {
    failed_steps_.erase(failed_steps_.begin());
  }
}

int64_t Client::CompleteBelow(const v1::UpdateId& id,
                              google::protobuf::RepeatedField<int64_t>& keep) {
  if (num_shards() == 1 || id.client_id() != client_id_) return 0;
  absl::MutexLock l(&steps_mu_);
  const int64_t below =
      open_steps_.empty() ? sequence_.load() + 1 : *open_steps_.begin();
  for (const int64_t failed : failed_steps_) {
    if (failed < below) keep.Add(failed);
  }
  return below;
}

void Client::RecoverLeftSteps() {
  if (options_.recover_after == absl::InfiniteDuration()) return;
  std::vector<std::unique_ptr<AdminClient>> admins;
  std::vector<AdminClient*> shards;
  for (size_t i = 0; i < channels_.size(); ++i) {
    admins.push_back(std::make_unique<AdminClient>(
        v1::AdminService::NewStub(channels_[i]), options_.timeout, shards_[i]));
    shards.push_back(admins.back().get());
  }
  RecoverOptions recover;
  recover.min_age = options_.recover_after;
  recover.pause_id = options_.pause_id;
  // Best effort (see ClientOptions::recover_after).
  RecoverSteps(shards, recover).IgnoreError();
}

std::string Client::ClusterId() const {
  absl::MutexLock l(&id_mu_);
  return cluster_id_;
}

template <typename Body>
std::invoke_result_t<Body> Client::Routed(Body body) {
  if (routed_depth > 0) return body();  // a call inside a routed call
  for (int refresh = 0;; ++refresh) {
    std::optional<std::invoke_result_t<Body>> result;
    int64_t generation;
    {
      absl::ReaderMutexLock l(&topology_mu_);
      generation = generation_;
      ++routed_depth;
      result.emplace(body());
      --routed_depth;
    }
    absl::Status status;
    if constexpr (std::is_same_v<std::invoke_result_t<Body>, absl::Status>) {
      status = *result;
    } else {
      status = result->status();
    }
    if (!IsStaleCluster(status) || refresh == kMaxRefreshes) {
      return *std::move(result);
    }
    const absl::Status refreshed = Refresh(generation);
    if (!refreshed.ok()) {
      return absl::Status(
          refreshed.code(),
          absl::StrCat(status.message(), "; following the cluster failed: ",
                       refreshed.message()));
    }
  }
}

absl::Status Client::Refresh(int64_t generation) {
  absl::MutexLock l(&topology_mu_);
  if (generation_ != generation) return absl::OkStatus();  // done meanwhile
  ++routed_depth;  // Attempt and CheckCluster below run under the lock
  const std::string old_id = ClusterId();
  std::vector<std::string> shards;
  absl::Status last = absl::FailedPreconditionError(
      "no shard of this client's list names the cluster's new shards");
  const absl::Time asked = absl::Now();
  for (absl::Duration backoff = options_.initial_backoff;;
       backoff = std::min(backoff * 2, options_.max_backoff)) {
    // One attempt each: a shard the re-shard took out may be stopped.
    for (int i = 0; i < num_shards() && shards.empty(); ++i) {
      v1::ServerInfo info;
      last = Attempt(
          {i, "GetServerInfo", "the server"}, false,
          [&](auto& stub, grpc::ClientContext* context) {
            return stub.GetServerInfo(context, v1::ServerInfoRequest(), &info);
          },
          options_.timeout);
      if (last.ok() && info.cluster().cluster_id() != old_id) {
        shards.assign(info.cluster().shards().begin(),
                      info.cluster().shards().end());
      }
    }
    if (!shards.empty() || !absl::IsUnavailable(last) ||
        absl::Now() + backoff - asked > options_.retry_timeout) {
      break;
    }
    absl::SleepFor(backoff);
  }
  absl::Status status = last;
  if (!shards.empty()) {
    std::vector<std::shared_ptr<grpc::ChannelInterface>> channels;
    for (const std::string& address : shards) {
      auto known = std::find(addresses_.begin(), addresses_.end(), address);
      channels.push_back(known == addresses_.end()
                             ? NewChannel(address, options_)
                             : channels_[known - addresses_.begin()]);
    }
    channels_ = std::move(channels);
    shards_ = StubsOf(channels_);
    addresses_ = std::move(shards);
    shard_count_.store(num_shards());
    cluster_checked_.store(false);
    {
      absl::MutexLock id(&id_mu_);
      cluster_id_.clear();
    }
    ++generation_;
    // The re-shard records the new places shard after shard: a shard not
    // switched yet is a mismatch for a while.
    const absl::Time start = absl::Now();
    absl::Duration backoff = options_.initial_backoff;
    while (absl::IsFailedPrecondition(status = CheckShards()) &&
           absl::Now() + backoff - start < options_.retry_timeout) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
  --routed_depth;
  return status;
}

template <typename Call>
absl::Status Client::Run(const Rpc& rpc, bool idempotent, Call call) {
  return Run(rpc, idempotent, call, options_.timeout);
}

template <typename Call>
absl::Status Client::Run(const Rpc& rpc, bool idempotent, Call call,
                         absl::Duration timeout) {
  VS_RETURN_IF_ERROR(CheckCluster());
  return Attempt(rpc, idempotent, call, timeout);
}

template <typename Call>
absl::Status Client::Attempt(const Rpc& rpc, bool idempotent, Call call,
                             absl::Duration timeout) {
  v1::VariableService::StubInterface& stub = *shards_[rpc.shard];
  const absl::Time start = absl::Now();
  absl::Duration backoff = options_.initial_backoff;
  absl::BitGen gen;
  const std::string cluster_id = ClusterId();
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    if (!cluster_id.empty()) {
      context.AddMetadata(kClusterIdMetadataKey, cluster_id);
    }
    if (!options_.pause_id.empty()) {
      context.AddMetadata(kPauseIdMetadataKey, options_.pause_id);
    }
    const absl::Time deadline = absl::Now() + timeout;
    context.set_deadline(absl::ToChronoTime(deadline));
    absl::Status status = FromGrpcStatus(call(stub, &context));
    if (absl::IsDeadlineExceeded(status) && !rpc.waits &&
        absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          rpc.method, " of ", rpc.subject, ": no answer from ",
          Server(rpc.shard), " within ", absl::FormatDuration(timeout),
          " (the timeout of each attempt): the server is hung or "
          "overloaded"));
    }
    if (status.ok() || !absl::IsUnavailable(status)) return status;
    if (attempt >= 2) {
      if (std::optional<absl::Status> away = ReshardedAway(rpc)) return *away;
    }
    // Full jitter: pause uniformly in [backoff/2, backoff].
    const absl::Duration pause = backoff * absl::Uniform(gen, 0.5, 1.0);
    if (!idempotent || attempt >= options_.max_attempts ||
        absl::Now() + pause - start > options_.retry_timeout) {
      const std::string retried =
          attempt == 1
              ? ""
              : absl::StrCat(" after ", attempt, " attempts in ",
                             absl::FormatDuration(absl::Trunc(
                                 absl::Now() - start, absl::Milliseconds(1))));
      return absl::UnavailableError(
          absl::StrCat(rpc.method, " of ", rpc.subject, ": ", Server(rpc.shard),
                       " unavailable", retried, ": ", status.message()));
    }
    absl::SleepFor(pause);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

std::optional<absl::Status> Client::ReshardedAway(const Rpc& rpc) {
  const std::string cluster_id = ClusterId();
  if (num_shards() < 2 || cluster_id.empty()) return std::nullopt;
  for (int i = 0; i < num_shards(); ++i) {
    if (i == rpc.shard) continue;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    v1::ServerInfo info;
    if (!shards_[i]
             ->GetServerInfo(&context, v1::ServerInfoRequest(), &info)
             .ok() ||
        info.cluster().cluster_id() == cluster_id) {
      continue;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        kStaleClusterPrefix, rpc.method, " of ", rpc.subject, ": ",
        Server(rpc.shard), " does not answer, and ", addresses_[i],
        " is a shard of cluster ", info.cluster().cluster_id(), " now"));
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<std::string>> Client::NamesOn(int shard) {
  absl::btree_set<std::string> names;
  v1::ListVariablesRequest every;
  every.set_recursive(true);
  VS_RETURN_IF_ERROR(WalkPages(
      std::move(every),
      [&](const v1::ListVariablesRequest& request,
          v1::ListVariablesResponse* page) {
        return Run({shard, "ListVariables", "every variable"}, true,
                   [&](auto& stub, grpc::ClientContext* context) {
                     return stub.ListVariables(context, request, page);
                   });
      },
      [&](v1::ListVariablesResponse& page) {
        for (const auto& entry : page.entries()) {
          names.insert(entry.name());
          if (entry.variable().has_slice()) {
            names.insert(entry.variable().slice().full_name());
          }
        }
        return absl::OkStatus();
      }));
  return std::vector<std::string>(names.begin(), names.end());
}

absl::Status Client::WithClusterNearMatches(absl::string_view name,
                                            absl::Status status) {
  if (num_shards() == 1 || !absl::IsNotFound(status)) return status;
  // The same search as the shard's, on its names, finds the suffix to
  // replace.
  const int home = ShardOf(name, num_shards());
  NameIndex everywhere;
  std::string home_matches;
  for (int i = 0; i < num_shards(); ++i) {
    absl::StatusOr<std::vector<std::string>> names = NamesOn(i);
    if (!names.ok()) return status;  // keep the home shard's answer
    NameIndex shard;
    for (const std::string& n : *names) {
      everywhere.Add(n);
      if (i == home) shard.Add(n);
    }
    if (i == home) {
      home_matches = NearMatches(name, shard.NearMatchCandidates(name));
    }
  }
  absl::string_view message = status.message();
  if (!absl::ConsumeSuffix(&message, home_matches)) return status;
  return absl::NotFoundError(absl::StrCat(
      message, NearMatches(name, everywhere.NearMatchCandidates(name))));
}

absl::StatusOr<v1::GetVariableResponse> Client::GetVariableOn(
    int shard, const v1::GetVariableRequest& request) {
  v1::GetVariableResponse response;
  const Rpc rpc = {shard, "GetVariable", request.name()};
  int attempts = 0;
  absl::Status status =
      Run(rpc, true, [&](auto& stub, grpc::ClientContext* context) {
        ++attempts;
        return stub.GetVariable(context, request, &response);
      });
  if (absl::IsAlreadyExists(status) && request.mode() == v1::CREATE &&
      attempts > 1) {
    status = absl::AlreadyExistsError(absl::StrCat(
        status.message(), " (This CREATE was retried after ", Server(rpc.shard),
        " became unavailable: its earlier attempt may have created the "
        "variable.)"));
  }
  VS_RETURN_IF_ERROR(WithClusterNearMatches(request.name(), status));
  return response;
}

absl::StatusOr<v1::GetVariableResponse> Client::GetVariable(
    const v1::GetVariableRequest& request) {
  return Routed([&]() -> absl::StatusOr<v1::GetVariableResponse> {
    const int home = ShardFor(request.name());
    if (num_shards() == 1) return GetVariableOn(home, request);
    // The home shard holds part 0 (and every part ShardOf places there) and
    // decides: it creates its parts or checks the request against them with
    // TensorFlow's errors. Only then do the other shards get their parts,
    // created idempotently as the home's describe them.
    v1::GetVariableRequest at_home = request;
    at_home.mutable_placement()->set_shard_index(home);
    at_home.mutable_placement()->set_shard_count(num_shards());
    VS_ASSIGN_OR_RETURN(v1::GetVariableResponse response,
                        GetVariableOn(home, at_home));
    if (response.parts().empty()) return response;
    return WithOtherParts(request, std::move(response));
  });
}

absl::StatusOr<v1::GetVariableResponse> Client::WithOtherParts(
    const v1::GetVariableRequest& request, v1::GetVariableResponse response) {
  const v1::VariableInfo& whole = response.variable();
  const v1::VariableInfo& part0 = response.parts(0);
  v1::GetVariableRequest rest;
  rest.set_name(request.name());
  rest.set_mode(v1::AUTO_REUSE);
  *rest.mutable_shape() = whole.shape();
  rest.set_dtype(whole.dtype());
  *rest.mutable_initializer() = whole.initializer();
  if (whole.initializer().kind() == v1::Initializer::CONSTANT &&
      !whole.initializer().has_value()) {
    // Too large to be stored with the variable: the caller's, with the seed
    // the home shard chose.
    *rest.mutable_initializer() = request.initializer();
    rest.mutable_initializer()->set_seed(whole.initializer().seed());
  }
  rest.set_trainable(whole.trainable());
  if (whole.has_collections()) {
    *rest.mutable_collections() = whole.collections();
  }
  if (part0.has_constraint()) *rest.mutable_constraint() = part0.constraint();
  *rest.mutable_partitioner()->mutable_explicit_()->mutable_partitions() =
      part0.slice().partitions();
  int64_t n = 1;
  for (const int64_t p : part0.slice().partitions()) n *= p;
  const int home = ShardFor(request.name());
  absl::btree_set<int> others;
  for (int64_t i = 0; i < n; ++i) {
    const int shard = ShardOf(
        JoinName(request.name(), absl::StrCat("part_", i)), num_shards());
    if (shard != home) others.insert(shard);
  }
  std::vector<v1::GetVariableResponse> replies(shards_.size());
  VS_RETURN_IF_ERROR(InParallel(
      std::vector<int>(others.begin(), others.end()), [&](int shard) {
        v1::GetVariableRequest here = rest;
        here.mutable_placement()->set_shard_index(shard);
        here.mutable_placement()->set_shard_count(num_shards());
        VS_ASSIGN_OR_RETURN(replies[shard], GetVariableOn(shard, here));
        return absl::OkStatus();
      }));
  for (v1::GetVariableResponse& reply : replies) {
    for (v1::VariableInfo& part : *reply.mutable_parts()) {
      response.add_parts()->Swap(&part);
    }
  }
  std::sort(response.mutable_parts()->begin(), response.mutable_parts()->end(),
            [](const v1::VariableInfo& a, const v1::VariableInfo& b) {
              return a.slice().part_index() < b.slice().part_index();
            });
  return response;
}

absl::StatusOr<ReadResult> Client::Read(absl::string_view name) {
  return Routed([&]() -> absl::StatusOr<ReadResult> {
    v1::ReadRequest request;
    request.set_name(std::string(name));
    v1::ReadResponse response;
    absl::Status status = Run(On("Read", name), true,
                              [&](auto& stub, grpc::ClientContext* context) {
                                return stub.Read(context, request, &response);
                              });
    // Too large for one message: stream it.
    if (absl::IsResourceExhausted(status)) return ReadByStream(request);
    VS_RETURN_IF_ERROR(WithClusterNearMatches(name, status));
    VS_ASSIGN_OR_RETURN(Tensor value,
                        TensorFromProto(response.mutable_value()));
    return ReadResult{std::move(value), response.version()};
  });
}

absl::StatusOr<ReadResult> Client::ReadByStream(
    const v1::ReadRequest& request) {
  v1::StreamHeader header;
  std::string bytes;
  VS_RETURN_IF_ERROR(Run(
      On("ReadStream", request.name()), true,
      [&](auto& stub, grpc::ClientContext* context) {
        bytes.clear();
        std::unique_ptr<grpc::ClientReaderInterface<v1::TensorChunk>> reader =
            stub.ReadStream(context, request);
        v1::TensorChunk chunk;
        bool first = true;
        while (reader->Read(&chunk)) {
          if (first) {
            header = chunk.header();
            int64_t n = 1;
            for (int64_t d : header.shape().dims()) n *= d;
            bytes.reserve(static_cast<size_t>(n) * DTypeSize(header.dtype()));
            first = false;
          }
          bytes.append(chunk.data());
        }
        return reader->Finish();
      }));
  VS_ASSIGN_OR_RETURN(Tensor value,
                      Tensor::FromBytes(header.dtype(),
                                        {header.shape().dims().begin(),
                                         header.shape().dims().end()},
                                        std::move(bytes)));
  return ReadResult{std::move(value), header.version()};
}

absl::StatusOr<UpdateResult> Client::WriteByStream(v1::StreamHeader header,
                                                   const SharedTensor& tensor,
                                                   bool idempotent) {
  header.set_dtype(tensor.dtype);
  header.mutable_shape()->mutable_dims()->Assign(tensor.dims.begin(),
                                                 tensor.dims.end());
  v1::UpdateResponse response;
  VS_RETURN_IF_ERROR(Run(
      On("WriteStream", header.name()), idempotent,
      [&](auto& stub, grpc::ClientContext* context) {
        std::unique_ptr<grpc::ClientWriterInterface<v1::TensorChunk>> writer =
            stub.WriteStream(context, &response);
        const absl::string_view bytes = tensor.bytes;
        const size_t step = static_cast<size_t>(options_.stream_chunk_bytes);
        size_t offset = 0;
        v1::TensorChunk chunk;
        *chunk.mutable_header() = header;
        do {
          const size_t n = std::min(step, bytes.size() - offset);
          chunk.set_data(bytes.data() + offset, n);
          offset += n;
          if (!writer->Write(chunk)) break;  // the server ended the call
          chunk.clear_header();
        } while (offset < bytes.size());
        writer->WritesDone();
        return writer->Finish();
      }));
  return ToUpdateResult(response);
}

template <typename Request>
absl::StatusOr<UpdateResult> Client::Update(absl::string_view name,
                                            const SharedTensor& tensor,
                                            const UpdateOptions& options) {
  constexpr bool add = std::is_same_v<Request, v1::AssignAddRequest>;
  Request request;
  SetUpdateFields(name, options, request);
  // Assigning the same value again is harmless unless a version is expected;
  // adding it again is not.
  const bool idempotent = Identify(request.mutable_id()) ||
                          (!add && !options.expected_version.has_value());
  if (StreamIt(tensor, options)) {
    return Routed([&]() -> absl::StatusOr<UpdateResult> {
      return WriteByStream(StreamHeaderOf(request, add), tensor, idempotent);
    });
  }
  // The request without its tensor, then the tensor's field: protobuf merges
  // the two parts into the whole request.
  const int field = add ? int{v1::AssignAddRequest::kDeltaFieldNumber}
                        : int{v1::AssignRequest::kValueFieldNumber};
  const std::string head =
      TensorHead(tensor.dtype, tensor.dims, tensor.bytes.size());
  const std::string prefix =
      request.SerializeAsString() +
      FieldHead(field, head.size() + tensor.bytes.size()) + head;
  static const std::string kMethod =
      absl::StrCat("/", v1::VariableService::service_full_name(),
                   add ? "/AssignAdd" : "/Assign");
  return Routed([&]() -> absl::StatusOr<UpdateResult> {
    const Rpc rpc = On(add ? "AssignAdd" : "Assign", name);
    const std::shared_ptr<grpc::ChannelInterface>& channel =
        channels_[rpc.shard];
    v1::UpdateResponse response;
    VS_RETURN_IF_ERROR(WithClusterNearMatches(
        name, Run(rpc, idempotent, [&](auto&, grpc::ClientContext* context) {
          const grpc::ByteBuffer bytes = WithContent(prefix, tensor);
          return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer,
                                                   v1::UpdateResponse>(
              channel.get(),
              grpc::internal::RpcMethod(kMethod.c_str(),
                                        grpc::internal::RpcMethod::NORMAL_RPC),
              context, bytes, &response);
        })));
    return ToUpdateResult(response);
  });
}

absl::StatusOr<UpdateResult> Client::Assign(absl::string_view name,
                                            Tensor value,
                                            const UpdateOptions& options) {
  return Assign(name, SharedTensor::Of(std::move(value)), options);
}

absl::StatusOr<UpdateResult> Client::AssignAdd(absl::string_view name,
                                               Tensor delta,
                                               const UpdateOptions& options) {
  return AssignAdd(name, SharedTensor::Of(std::move(delta)), options);
}

absl::StatusOr<UpdateResult> Client::Assign(absl::string_view name,
                                            SharedTensor value,
                                            const UpdateOptions& options) {
  return Update<v1::AssignRequest>(name, value, options);
}

absl::StatusOr<UpdateResult> Client::AssignAdd(absl::string_view name,
                                               SharedTensor delta,
                                               const UpdateOptions& options) {
  return Update<v1::AssignAddRequest>(name, delta, options);
}

absl::StatusOr<v1::ListVariablesResponse> Client::ListVariables(
    const v1::ListVariablesRequest& request) {
  return Routed([&]() -> absl::StatusOr<v1::ListVariablesResponse> {
    std::vector<v1::ListVariablesResponse> pages(shards_.size());
    for (size_t i = 0; i < shards_.size(); ++i) {
      VS_RETURN_IF_ERROR(
          Run({static_cast<int>(i), "ListVariables",
               absl::StrCat("scope '", request.scope(), "'")},
              true, [&](auto& stub, grpc::ClientContext* context) {
                return stub.ListVariables(context, request, &pages[i]);
              }));
    }
    if (pages.size() == 1) return std::move(pages[0]);
    return MergePages(request, std::move(pages));
  });
}

absl::Status Client::ForEachPage(
    v1::ListVariablesRequest request,
    absl::FunctionRef<absl::Status(v1::ListVariablesResponse&)> fn) {
  return WalkPages(
      std::move(request),
      [&](const v1::ListVariablesRequest& next,
          v1::ListVariablesResponse* page) -> absl::Status {
        VS_ASSIGN_OR_RETURN(*page, ListVariables(next));
        return absl::OkStatus();
      },
      fn);
}

absl::StatusOr<v1::VariableInfo> Client::Stat(absl::string_view name) {
  return Routed([&]() -> absl::StatusOr<v1::VariableInfo> {
    v1::StatRequest request;
    request.set_name(std::string(name));
    v1::VariableInfo response;
    VS_RETURN_IF_ERROR(WithClusterNearMatches(
        name, Run(On("Stat", name), true,
                  [&](auto& stub, grpc::ClientContext* context) {
                    return stub.Stat(context, request, &response);
                  })));
    return response;
  });
}

absl::Status Client::CheckNotAPart(absl::string_view name, bool rename) {
  if (num_shards() == 1 || !absl::StartsWith(LeafName(name), "part_")) {
    return absl::OkStatus();
  }
  absl::StatusOr<v1::VariableInfo> info = Stat(name);
  if (!info.ok() || !info->has_slice()) return absl::OkStatus();
  const v1::SliceInfo& slice = info->slice();
  int64_t n = 1;
  for (const int64_t p : slice.partitions()) n *= p;
  if (n == 1) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "Variable ", name, " is part ", slice.part_index(),
      " of the partitioned variable ", slice.full_name(), " (", n, " parts); ",
      rename ? absl::StrCat("rename the whole: varscope mv ", slice.full_name(),
                            " NEW_NAME")
             : absl::StrCat("delete the whole: varscope rm -r ",
                            slice.full_name())));
}

absl::StatusOr<int64_t> Client::Delete(absl::string_view name, bool recursive) {
  return Routed([&]() -> absl::StatusOr<int64_t> {
    VS_RETURN_IF_ERROR(CheckNotAPart(name, /*rename=*/false));
    v1::DeleteRequest request;
    request.set_name(std::string(name));
    request.set_recursive(recursive);
    // A scope's variables may be on every shard; `name` itself is on its own,
    // unless it is an embedding variable (on every shard: the others answer
    // NOT_FOUND for a dense one, and only the home shard's count is kept).
    const int home = ShardOf(name, num_shards());
    absl::Status home_status;
    int64_t deleted = 0;
    for (int i = 0; i < num_shards(); ++i) {
      v1::DeleteResponse response;
      const absl::Status status =
          Run({i, "Delete", request.name()}, false,
              [&](auto& stub, grpc::ClientContext* context) {
                return stub.Delete(context, request, &response);
              });
      if (!status.ok() && !absl::IsNotFound(status)) return status;
      if (i == home) home_status = status;
      if (recursive || i == home) deleted += response.deleted();
    }
    if (deleted == 0) return home_status;
    return deleted;
  });
}

absl::StatusOr<int64_t> Client::Rename(absl::string_view old_name,
                                       absl::string_view new_name) {
  return Routed([&]() -> absl::StatusOr<int64_t> {
    if (num_shards() > 1) return RenameAcrossShards(old_name, new_name);
    v1::RenameRequest request;
    request.set_old_name(std::string(old_name));
    request.set_new_name(std::string(new_name));
    v1::RenameResponse response;
    VS_RETURN_IF_ERROR(Run({0, "Rename", request.old_name()}, false,
                           [&](auto& stub, grpc::ClientContext* context) {
                             return stub.Rename(context, request, &response);
                           }));
    return response.renamed();
  });
}

absl::StatusOr<int64_t> Client::RenameAcrossShards(absl::string_view old_name,
                                                   absl::string_view new_name) {
  VS_RETURN_IF_ERROR(ValidateRename(old_name, new_name));
  VS_RETURN_IF_ERROR(CheckNotAPart(old_name, /*rename=*/true));
  auto renamed = [&](absl::string_view n) {
    return absl::StrCat(new_name, n.substr(old_name.size()));
  };
  // Under a pause of every shard (changes held back, as for a consistent
  // cut): what each shard holds, the new names free, then the move.
  int64_t count = 0;
  CutOptions cut;
  cut.reason = absl::StrCat("a rename of ", old_name);
  cut.lease = absl::Seconds(60);
  VS_RETURN_IF_ERROR(WithConsistentCut(
      *this, options_.timeout, cut, [&](const Cut&) -> absl::Status {
        // What each shard holds: `old_name` and what lies under it.
        std::vector<std::vector<std::string>> held(shards_.size());
        for (int i = 0; i < num_shards(); ++i) {
          v1::ListVariablesRequest under;
          under.set_scope(std::string(old_name));
          under.set_recursive(true);
          v1::StatRequest stat;
          stat.set_name(std::string(old_name));
          v1::VariableInfo info;
          const absl::Status found =
              Run({i, "Stat", stat.name()}, true,
                  [&](auto& stub, grpc::ClientContext* context) {
                    return stub.Stat(context, stat, &info);
                  });
          if (found.ok()) held[i].push_back(stat.name());
          if (!found.ok() && !absl::IsNotFound(found)) return found;
          VS_RETURN_IF_ERROR(WalkPages(
              std::move(under),
              [&](const v1::ListVariablesRequest& request,
                  v1::ListVariablesResponse* page) {
                return Run({i, "ListVariables",
                            absl::StrCat("scope '", old_name, "'")},
                           true, [&](auto& stub, grpc::ClientContext* context) {
                             return stub.ListVariables(context, request, page);
                           });
              },
              [&](v1::ListVariablesResponse& page) {
                for (const auto& entry : page.entries()) {
                  held[i].push_back(entry.name());
                }
                return absl::OkStatus();
              }));
          count += static_cast<int64_t>(held[i].size());
        }
        if (count == 0) {
          return absl::NotFoundError(absl::StrCat(
              "Nothing named ", old_name, " or under ", old_name, "/ exists."));
        }
        // The new names must be free where they will live.
        for (const std::vector<std::string>& names : held) {
          for (const std::string& n : names) {
            v1::StatRequest stat;
            stat.set_name(renamed(n));
            v1::VariableInfo info;
            const absl::Status taken =
                Run(On("Stat", stat.name()), true,
                    [&](auto& stub, grpc::ClientContext* context) {
                      return stub.Stat(context, stat, &info);
                    });
            if (taken.ok()) {
              return absl::AlreadyExistsError(
                  absl::StrCat("Cannot rename ", n, " to ", stat.name(),
                               ": Variable ", stat.name(), " already exists"));
            }
            if (!absl::IsNotFound(taken)) return taken;
          }
        }
        // Each shard's variables, renamed, go to the shards of their new
        // names, then leave their old one.
        for (int i = 0; i < num_shards(); ++i) {
          if (held[i].empty()) continue;
          std::unique_ptr<AdminClient> source = AdminClient::Connect(
              addresses_[i], options_.timeout, options_.security);
          std::map<int, v1::InstallVariablesRequest> installs;
          v1::ExportVariablesRequest exported;
          exported.mutable_names()->Assign(held[i].begin(), held[i].end());
          exported.set_rename_from(std::string(old_name));
          exported.set_rename_to(std::string(new_name));
          VS_ASSIGN_OR_RETURN(v1::ExportVariablesResponse variables,
                              source->ExportVariables(exported));
          for (v1::MovedVariable& var : *variables.mutable_variables()) {
            v1::InstallVariablesRequest& install =
                installs[ShardFor(var.stored().info().name())];
            install.set_refuse_present(true);
            *install.add_variables() = std::move(var);
          }
          for (auto& [dest, install] : installs) {
            VS_RETURN_IF_ERROR(AdminClient::Connect(addresses_[dest],
                                                    options_.timeout,
                                                    options_.security)
                                   ->InstallVariables(install)
                                   .status());
          }
          v1::RemoveVariablesRequest remove;
          *remove.mutable_names() = exported.names();
          VS_RETURN_IF_ERROR(source->RemoveVariables(remove).status());
        }
        return absl::OkStatus();
      }));
  return count;
}

absl::StatusOr<std::vector<v1::ServerInfo>> Client::ServerInfos() {
  std::vector<v1::ServerInfo> infos(shards_.size());
  for (int i = 0; i < num_shards(); ++i) {
    v1::ServerInfoRequest request;
    VS_RETURN_IF_ERROR(Attempt(
        {i, "GetServerInfo", "the server"}, true,
        [&](auto& stub, grpc::ClientContext* context) {
          return stub.GetServerInfo(context, request, &infos[i]);
        },
        options_.timeout));
  }
  return infos;
}

absl::Status Client::CheckCluster() {
  if (cluster_checked_.load(std::memory_order_acquire)) {
    return absl::OkStatus();
  }
  return Routed([&] { return CheckShards(); });
}

namespace {

// Whether the shards `infos` of a list are of one cluster that a re-shard
// made from exactly that list: each was shard i of it.
bool ReshardedFrom(const std::vector<v1::ServerInfo>& infos) {
  const v1::ClusterIdentity& first = infos[0].cluster();
  for (size_t i = 0; i < infos.size(); ++i) {
    const v1::ClusterIdentity& now = infos[i].cluster();
    const v1::ClusterIdentity& before = now.resharded_from();
    if (now.cluster_id().empty() || now.cluster_id() != first.cluster_id() ||
        before.shards().empty() ||
        before.cluster_id() != first.resharded_from().cluster_id() ||
        before.shard_index() != static_cast<int32_t>(i) ||
        before.shard_count() != static_cast<int32_t>(infos.size())) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status Client::CheckShards() {
  if (cluster_checked_.load(std::memory_order_acquire)) {
    return absl::OkStatus();
  }
  VS_ASSIGN_OR_RETURN(const std::vector<v1::ServerInfo> infos, ServerInfos());
  const int n = num_shards();
  if (n > 1 && ReshardedFrom(infos)) {
    // Followed as by a client that checked the old cluster (see Routed).
    return absl::FailedPreconditionError(absl::StrCat(
        kStaleClusterPrefix, "the shards ", absl::StrJoin(addresses_, ","),
        " of cluster ", infos[0].cluster().resharded_from().cluster_id(),
        " were re-sharded into cluster ", infos[0].cluster().cluster_id(),
        ": connect to its new shards, in order: ",
        absl::StrJoin(infos[0].cluster().shards(), ",")));
  }
  for (int i = 0; i < n; ++i) {
    const v1::ClusterIdentity& identity = infos[i].cluster();
    if (identity.shard_index() == i && identity.shard_count() == n &&
        !identity.removed()) {
      continue;
    }
    const std::vector<std::string> order(identity.shards().begin(),
                                         identity.shards().end());
    return absl::FailedPreconditionError(absl::StrCat(
        "Shard list mismatch: ", addresses_[i], " is ", DescribeShard(identity),
        ", but this client lists it as shard ", i, " of ", n, ". ",
        order.empty()
            ? "Start every shard with the same --cluster list and its own "
              "--shard-index (or a ps task's TF_CONFIG), and give every "
              "worker the shards in that order"
            : absl::StrCat("Give every worker the shards in the cluster's "
                           "order: ",
                           absl::StrJoin(order, ","))));
  }
  for (int i = 1; i < n; ++i) {
    if (infos[i].cluster().cluster_id() == infos[0].cluster().cluster_id()) {
      continue;
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "Shard list mismatch: ", addresses_[i], " is ",
        DescribeShard(infos[i].cluster()), ", but ", addresses_[0], " is ",
        DescribeShard(infos[0].cluster()),
        ". Give every worker the shards of one cluster, in its order"));
  }
  {
    absl::MutexLock l(&id_mu_);
    cluster_id_ = infos[0].cluster().cluster_id();
  }
  cluster_checked_.store(true, std::memory_order_release);
  if (n > 1) RecoverLeftSteps();
  return absl::OkStatus();
}

bool IsStaleCluster(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) &&
         absl::StartsWith(status.message(), kStaleClusterPrefix);
}

absl::StatusOr<v1::ServerInfo> Client::GetServerInfo() {
  return Routed([&]() -> absl::StatusOr<v1::ServerInfo> {
    VS_RETURN_IF_ERROR(CheckCluster());
    VS_ASSIGN_OR_RETURN(const std::vector<v1::ServerInfo> infos, ServerInfos());
    return SumServerInfos(infos);
  });
}

v1::ServerInfo SumServerInfos(const std::vector<v1::ServerInfo>& shards) {
  v1::ServerInfo total = shards[0];
  for (size_t i = 1; i < shards.size(); ++i) {
    const v1::ServerInfo& info = shards[i];
    total.set_start_time_micros(
        std::min(total.start_time_micros(), info.start_time_micros()));
    total.set_variable_count(total.variable_count() + info.variable_count());
    total.set_total_bytes(total.total_bytes() + info.total_bytes());
    total.set_reads(total.reads() + info.reads());
    total.set_updates(total.updates() + info.updates());
    total.set_gets(total.gets() + info.gets());
  }
  return total;
}

namespace {

// Moves each update of `request` into the part of its variable's shard;
// returns the shard of each update, in order.
template <typename Request>
std::vector<int> SplitUpdates(Request& request, std::vector<Request>& parts) {
  std::vector<int> shard_of;
  const int num_shards = static_cast<int>(parts.size());
  for (v1::Update& update : *request.mutable_updates()) {
    const int shard = ShardOf(update.name(), num_shards);
    shard_of.push_back(shard);
    *parts[shard].add_updates() = std::move(update);
  }
  request.clear_updates();
  return shard_of;
}

// SplitUpdates undone: Routed sends a request again to the new shards when
// the cluster changed under it.
template <typename Request>
void GiveBackUpdates(const std::vector<int>& shard_of,
                     std::vector<Request>& parts, Request& request) {
  std::vector<int> next(parts.size(), 0);
  for (const int shard : shard_of) {
    *request.add_updates() =
        std::move(*parts[shard].mutable_updates(next[shard]++));
  }
}

}  // namespace

absl::StatusOr<v1::BatchUpdateResponse> Client::BatchUpdate(
    v1::BatchUpdateRequest request) {
  // Numbered unless the caller sends a step again under its id.
  v1::UpdateId id = request.id();
  const bool idempotent = BeginStep(&id);
  if (idempotent) *request.mutable_id() = id;
  bool spanned = false;
  absl::StatusOr<v1::BatchUpdateResponse> result =
      Routed([&]() -> absl::StatusOr<v1::BatchUpdateResponse> {
        return BatchUpdateRouted(request, idempotent, spanned);
      });
  if (idempotent) EndStep(id, !result.ok() && spanned);
  return result;
}

absl::StatusOr<v1::BatchUpdateResponse> Client::BatchUpdateRouted(
    v1::BatchUpdateRequest& request, bool idempotent, bool& spanned) {
  // One batch per shard, each atomic on its shard, under the same id (each
  // shard keeps its own record of applied ids).
  std::vector<v1::BatchUpdateRequest> batches(shards_.size());
  const bool empty = request.updates().empty();
  const std::vector<int> shard_of = SplitUpdates(request, batches);
  std::vector<int> parts;
  for (int i = 0; i < num_shards(); ++i) {
    if (batches[i].updates().empty() && !empty) continue;
    *batches[i].mutable_id() = request.id();
    batches[i].set_return_values(request.return_values());
    parts.push_back(i);
  }
  spanned = parts.size() > 1;
  google::protobuf::RepeatedField<int64_t> keep;
  const int64_t complete_below = CompleteBelow(request.id(), keep);
  const std::vector<int> span = StepSpan(parts, request.id());
  for (const int i : parts) {
    MarkSpan(span, batches[i]);
    batches[i].set_complete_below(complete_below);
    *batches[i].mutable_keep_intents() = keep;
  }
  AttachIntent(span, batches, &v1::IntentPart::mutable_batch_update);
  std::vector<v1::BatchUpdateResponse> replies(shards_.size());
  const absl::Status status = InParallel(parts, [&](int i) {
    return Run({i, "BatchUpdate", UpdatesSubject(batches[i])}, idempotent,
               [&](auto& stub, grpc::ClientContext* context) {
                 return stub.BatchUpdate(context, batches[i], &replies[i]);
               });
  });
  if (IsStaleCluster(status)) GiveBackUpdates(shard_of, batches, request);
  VS_RETURN_IF_ERROR(status);
  if (shards_.size() == 1) return std::move(replies[0]);
  // The replies in the order of the updates.
  v1::BatchUpdateResponse response;
  std::vector<int> next(shards_.size(), 0);
  response.set_duplicate(true);
  for (const int shard : shard_of) {
    v1::BatchUpdateResponse& reply = replies[shard];
    response.set_duplicate(response.duplicate() && reply.duplicate());
    const int k = next[shard]++;
    response.add_versions(reply.versions(k));
    if (k < reply.values_size()) {
      response.add_values()->Swap(reply.mutable_values(k));
    }
  }
  return response;
}

absl::StatusOr<v1::SyncApplyResponse> Client::SyncApply(
    v1::SyncApplyRequest request) {
  const bool idempotent = request.has_id() || Identify(request.mutable_id());
  return Routed([&]() -> absl::StatusOr<v1::SyncApplyResponse> {
    const int home =
        ShardOf(GlobalStepName(request.global_step()), num_shards());
    // One part per shard, under the same id (each shard keeps its own record
    // of counted contributions): the global step's shard gets its variables'
    // part, and the other shards' once they answered.
    std::vector<v1::SyncApplyRequest> parts(shards_.size());
    const std::vector<int> shard_of = SplitUpdates(request, parts);
    std::vector<int> others;
    for (int i = 0; i < num_shards(); ++i) {
      if (i != home && !parts[i].updates().empty()) others.push_back(i);
    }
    for (int i = 0; i < num_shards(); ++i) {
      if (i != home && parts[i].updates().empty()) continue;
      parts[i].MergeFrom(request);
      if (others.empty()) continue;
      parts[i].mutable_shards()->set_global_step_elsewhere(i != home);
      parts[i].mutable_shards()->mutable_others()->Assign(others.begin(),
                                                          others.end());
    }
    auto send = [&](int i, v1::SyncApplyResponse* response) {
      return Run({i, "SyncApply", request.accumulator()}, idempotent,
                 [&](auto& stub, grpc::ClientContext* context) {
                   return stub.SyncApply(context, parts[i], response);
                 });
    };
    std::vector<v1::SyncApplyResponse> replies(shards_.size());
    absl::Status status =
        InParallel(others, [&](int i) { return send(i, &replies[i]); });
    bool duplicate = true;
    if (status.ok()) {
      for (const int i : others) {
        // A shard past the step (stale there) applied it too.
        if (replies[i].outcome() != v1::SyncApplyResponse::ACCUMULATED) {
          parts[home].mutable_shards()->add_applied(i);
        }
        duplicate = duplicate && replies[i].duplicate();
      }
      status = send(home, &replies[home]);
    }
    if (IsStaleCluster(status)) GiveBackUpdates(shard_of, parts, request);
    VS_RETURN_IF_ERROR(status);
    v1::SyncApplyResponse& response = replies[home];
    response.set_duplicate(response.duplicate() && duplicate);
    return std::move(response);
  });
}

absl::StatusOr<int64_t> Client::WaitForStep(absl::string_view global_step,
                                            int64_t step,
                                            absl::Duration timeout) {
  return Routed([&]() -> absl::StatusOr<int64_t> {
    v1::WaitForStepRequest request;
    request.set_global_step(std::string(global_step));
    request.set_step(step);
    v1::WaitForStepResponse response;
    Rpc rpc = On("WaitForStep", GlobalStepName(request.global_step()));
    rpc.waits = true;
    VS_RETURN_IF_ERROR(Run(
        rpc, true,
        [&](auto& stub, grpc::ClientContext* context) {
          return stub.WaitForStep(context, request, &response);
        },
        timeout));
    return response.global_step();
  });
}

absl::StatusOr<v1::BatchReadResponse> Client::BatchRead(
    const v1::BatchReadRequest& request) {
  return Routed([&]() -> absl::StatusOr<v1::BatchReadResponse> {
    // By names: each shard reads its names. By scope: every shard reads its
    // part of the scope.
    std::vector<v1::BatchReadRequest> reads(shards_.size());
    for (v1::BatchReadRequest& read : reads) read.set_scope(request.scope());
    for (const std::string& name : request.names()) {
      reads[ShardOf(name, num_shards())].add_names(name);
    }
    std::vector<int> parts;
    for (int i = 0; i < num_shards(); ++i) {
      if (request.names().empty() || !reads[i].names().empty()) {
        parts.push_back(i);
      }
    }
    std::vector<v1::BatchReadResponse> replies(shards_.size());
    VS_RETURN_IF_ERROR(InParallel(parts, [&](int i) {
      const std::string subject =
          request.names().empty()
              ? absl::StrCat("scope '", request.scope(), "'")
              : absl::StrJoin(reads[i].names(), ", ");
      return Run({i, "BatchRead", subject}, true,
                 [&](auto& stub, grpc::ClientContext* context) {
                   return stub.BatchRead(context, reads[i], &replies[i]);
                 });
    }));
    v1::BatchReadResponse response;
    for (v1::BatchReadResponse& reply : replies) {
      for (auto& entry : *reply.mutable_entries()) {
        response.add_entries()->Swap(&entry);
      }
    }
    if (shards_.size() > 1) {
      std::sort(
          response.mutable_entries()->begin(),
          response.mutable_entries()->end(),
          [](const auto& a, const auto& b) { return a.name() < b.name(); });
    }
    return response;
  });
}

absl::StatusOr<ReadResult> Client::Gather(absl::string_view name,
                                          const Tensor& indices) {
  return Routed([&]() -> absl::StatusOr<ReadResult> {
    v1::GatherRequest request;
    request.set_name(std::string(name));
    TensorToProto(indices, request.mutable_indices());
    v1::GatherResponse response;
    VS_RETURN_IF_ERROR(WithClusterNearMatches(
        name, Run(On("Gather", name), true,
                  [&](auto& stub, grpc::ClientContext* context) {
                    return stub.Gather(context, request, &response);
                  })));
    VS_ASSIGN_OR_RETURN(Tensor rows, TensorFromProto(response.mutable_rows()));
    return ReadResult{std::move(rows), response.version()};
  });
}

int EmbeddingShardOf(int64_t key, int num_shards) {
  if (num_shards <= 1) return 0;
  return static_cast<int>(SplitMix64(static_cast<uint64_t>(key)) %
                          static_cast<uint64_t>(num_shards));
}

std::vector<int> Client::ShardsToCall(
    const std::vector<std::vector<int64_t>>& split) const {
  // Shard 0 always: with no keys at all it still checks the request.
  std::vector<int> shards;
  for (int i = 0; i < num_shards(); ++i) {
    if (!split[i].empty() || i == 0) shards.push_back(i);
  }
  return shards;
}

absl::Status Client::CheckRowsPerKey(absl::string_view name,
                                     absl::string_view what, const Tensor& keys,
                                     const Tensor* rows) const {
  // On one server the server checks; split over shards they must match.
  if (shards_.size() == 1 || rows == nullptr || keys.dims().size() != 1 ||
      (!rows->dims().empty() && rows->dims()[0] == keys.dims()[0])) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("The ", what, " for embedding variable ", name,
                   " must have one row per key (", keys.dims()[0], ")"));
}

absl::StatusOr<std::vector<std::vector<int64_t>>> Client::SplitKeys(
    const Tensor& keys) const {
  std::vector<std::vector<int64_t>> out(shards_.size());
  if (shards_.size() == 1 || keys.dims().size() != 1) {
    // The server checks the keys against the variable.
    const int64_t n = keys.dims().empty() ? 1 : keys.dims()[0];
    for (int64_t i = 0; i < n; ++i) out[0].push_back(i);
    return out;
  }
  if (keys.dtype() != v1::DT_INT64 && keys.dtype() != v1::DT_INT32) {
    return absl::InvalidArgumentError(
        absl::StrCat("Embedding keys must be int64 or int32, not ",
                     DTypeName(keys.dtype())));
  }
  for (int64_t i = 0; i < keys.dims()[0]; ++i) {
    int64_t key;
    if (keys.dtype() == v1::DT_INT64) {
      memcpy(&key, keys.bytes().data() + i * 8, 8);
    } else {
      int32_t narrow;
      memcpy(&narrow, keys.bytes().data() + i * 4, 4);
      key = narrow;
    }
    out[EmbeddingShardOf(key, num_shards())].push_back(i);
  }
  return out;
}

absl::StatusOr<v1::GetVariableResponse> Client::GetEmbeddingVariable(
    const v1::GetEmbeddingVariableRequest& request) {
  return Routed([&]() -> absl::StatusOr<v1::GetVariableResponse> {
    const int home = ShardFor(request.name());
    std::vector<int> parts = {home};
    for (int i = 0; i < num_shards(); ++i) {
      if (i != home) parts.push_back(i);
    }
    std::vector<v1::GetVariableResponse> replies(shards_.size());
    VS_RETURN_IF_ERROR(WithClusterNearMatches(
        request.name(), InParallel(parts, [&](int i) {
          return Run({i, "GetEmbeddingVariable", request.name()}, true,
                     [&](auto& stub, grpc::ClientContext* context) {
                       return stub.GetEmbeddingVariable(context, request,
                                                        &replies[i]);
                     });
        })));
    return std::move(replies[home]);
  });
}

absl::StatusOr<Tensor> Client::EmbeddingLookup(
    absl::string_view name, const Tensor& keys,
    std::optional<int64_t> global_step, bool read_only) {
  return Routed([&]() -> absl::StatusOr<Tensor> {
    VS_ASSIGN_OR_RETURN(const std::vector<std::vector<int64_t>> split,
                        SplitKeys(keys));
    const std::vector<int> parts = ShardsToCall(split);
    std::vector<v1::EmbeddingLookupResponse> replies(shards_.size());
    VS_RETURN_IF_ERROR(WithClusterNearMatches(
        name, InParallel(parts, [&](int i) {
          v1::EmbeddingLookupRequest request;
          request.set_name(std::string(name));
          TensorToProto(shards_.size() == 1 ? keys : TakeRows(keys, split[i]),
                        request.mutable_keys());
          if (global_step.has_value()) request.set_global_step(*global_step);
          request.set_read_only(read_only);
          return Run({i, "EmbeddingLookup", std::string(name)}, true,
                     [&](auto& stub, grpc::ClientContext* context) {
                       return stub.EmbeddingLookup(context, request,
                                                   &replies[i]);
                     });
        })));
    if (shards_.size() == 1) {
      return TensorFromProto(replies[0].mutable_values());
    }
    // Only the shards called answered (a shard with no keys was not).
    std::vector<Tensor> rows(shards_.size());
    int64_t dim = 0;
    for (const int i : parts) {
      VS_ASSIGN_OR_RETURN(rows[i],
                          TensorFromProto(replies[i].mutable_values()));
      if (rows[i].dims().size() == 2) dim = rows[i].dims()[1];
    }
    Tensor out(v1::DT_FLOAT, {keys.dims()[0], dim});
    std::string bytes = out.ReleaseBytes();
    const size_t row = static_cast<size_t>(dim) * sizeof(float);
    for (const int i : parts) {
      for (size_t k = 0; k < split[i].size(); ++k) {
        memcpy(bytes.data() + static_cast<size_t>(split[i][k]) * row,
               rows[i].bytes().data() + k * row, row);
      }
    }
    return Tensor::FromBytes(v1::DT_FLOAT, {keys.dims()[0], dim},
                             std::move(bytes));
  });
}

absl::StatusOr<v1::EmbeddingApplyResponse> Client::EmbeddingApply(
    absl::string_view name, const Tensor& keys, const Tensor& gradients,
    const v1::Optimizer& optimizer, std::optional<int64_t> global_step) {
  v1::UpdateId id;
  const bool idempotent = BeginStep(&id);
  bool spanned = false;
  absl::StatusOr<v1::EmbeddingApplyResponse> result =
      Routed([&]() -> absl::StatusOr<v1::EmbeddingApplyResponse> {
        VS_ASSIGN_OR_RETURN(const std::vector<std::vector<int64_t>> split,
                            SplitKeys(keys));
        const std::vector<int> parts = ShardsToCall(split);
        VS_RETURN_IF_ERROR(
            CheckRowsPerKey(name, "gradients", keys, &gradients));
        const bool whole = shards_.size() == 1;
        spanned = parts.size() > 1;
        google::protobuf::RepeatedField<int64_t> keep;
        const int64_t complete_below = CompleteBelow(id, keep);
        const std::vector<int> span = StepSpan(parts, id);
        std::vector<v1::EmbeddingApplyRequest> requests(shards_.size());
        for (const int i : parts) {
          v1::EmbeddingApplyRequest& request = requests[i];
          request.set_name(std::string(name));
          TensorToProto(whole ? keys : TakeRows(keys, split[i]),
                        request.mutable_keys());
          TensorToProto(whole ? gradients : TakeRows(gradients, split[i]),
                        request.mutable_gradients());
          *request.mutable_optimizer() = optimizer;
          if (global_step.has_value()) request.set_global_step(*global_step);
          if (idempotent) *request.mutable_id() = id;
          MarkSpan(span, request);
          request.set_complete_below(complete_below);
          *request.mutable_keep_intents() = keep;
        }
        AttachIntent(span, requests, &v1::IntentPart::mutable_embedding_apply);
        std::vector<v1::EmbeddingApplyResponse> replies(shards_.size());
        VS_RETURN_IF_ERROR(WithClusterNearMatches(
            name, InParallel(parts, [&](int i) {
              return Run({i, "EmbeddingApply", std::string(name)}, idempotent,
                         [&](auto& stub, grpc::ClientContext* context) {
                           return stub.EmbeddingApply(context, requests[i],
                                                      &replies[i]);
                         });
            })));
        v1::EmbeddingApplyResponse response;
        response.set_duplicate(true);
        for (int i : parts) {
          response.set_applied(response.applied() + replies[i].applied());
          response.set_filtered(response.filtered() + replies[i].filtered());
          response.set_duplicate(response.duplicate() &&
                                 replies[i].duplicate());
        }
        return response;
      });
  if (idempotent) EndStep(id, !result.ok() && spanned);
  return result;
}

absl::StatusOr<v1::EmbeddingStats> Client::EmbeddingStat(absl::string_view name,
                                                         int hottest) {
  return Routed([&]() -> absl::StatusOr<v1::EmbeddingStats> {
    v1::EmbeddingStatsRequest request;
    request.set_name(std::string(name));
    request.set_hottest(hottest);
    std::vector<int> parts;
    for (int i = 0; i < num_shards(); ++i) parts.push_back(i);
    std::vector<v1::EmbeddingStats> replies(shards_.size());
    VS_RETURN_IF_ERROR(WithClusterNearMatches(
        name, InParallel(parts, [&](int i) {
          return Run({i, "EmbeddingStat", std::string(name)}, true,
                     [&](auto& stub, grpc::ClientContext* context) {
                       return stub.EmbeddingStat(context, request, &replies[i]);
                     });
        })));
    if (shards_.size() == 1) return std::move(replies[0]);
    v1::EmbeddingStats sum = replies[0];
    sum.clear_hottest();
    std::vector<v1::EmbeddingStats::HotKey> hot;
    for (int i = 0; i < num_shards(); ++i) {
      const v1::EmbeddingStats& r = replies[i];
      hot.insert(hot.end(), r.hottest().begin(), r.hottest().end());
      if (i == 0) continue;
      sum.set_size(sum.size() + r.size());
      sum.set_memory_keys(sum.memory_keys() + r.memory_keys());
      sum.set_disk_keys(sum.disk_keys() + r.disk_keys());
      sum.set_memory_bytes(sum.memory_bytes() + r.memory_bytes());
      sum.set_disk_bytes(sum.disk_bytes() + r.disk_bytes());
      sum.set_candidates(sum.candidates() + r.candidates());
      sum.set_admitted(sum.admitted() + r.admitted());
      sum.set_filtered(sum.filtered() + r.filtered());
      sum.set_evicted(sum.evicted() + r.evicted());
      sum.set_global_step(std::max(sum.global_step(), r.global_step()));
    }
    std::sort(hot.begin(), hot.end(), [](const auto& a, const auto& b) {
      return a.frequency() > b.frequency();
    });
    if (static_cast<int>(hot.size()) > hottest) hot.resize(hottest);
    for (auto& h : hot) *sum.add_hottest() = std::move(h);
    return sum;
  });
}

absl::Status Client::ForEachEmbeddingPage(
    v1::EmbeddingExportRequest request,
    absl::FunctionRef<absl::Status(v1::EmbeddingExportResponse&)> fn) {
  const std::string name = request.name();
  return Routed([&]() -> absl::Status {
    for (int i = 0; i < num_shards(); ++i) {
      request.clear_start_after();
      for (;;) {
        v1::EmbeddingExportResponse page;
        VS_RETURN_IF_ERROR(WithClusterNearMatches(
            name, Run({i, "EmbeddingExport", name}, true,
                      [&](auto& stub, grpc::ClientContext* context) {
                        return stub.EmbeddingExport(context, request, &page);
                      })));
        const int64_t n = page.keys().shape().dims_size() == 1
                              ? page.keys().shape().dims(0)
                              : 0;
        int64_t last = 0;
        if (n > 0) {
          memcpy(&last, page.keys().content().data() + (n - 1) * 8, 8);
        }
        const bool done = page.done() || n == 0;
        VS_RETURN_IF_ERROR(fn(page));
        if (done) break;
        request.set_start_after(last);
      }
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::EmbeddingExportResponse> Client::EmbeddingExport(
    absl::string_view name, int32_t page_size) {
  // Routed here too: after a re-shard the walk starts again, with nothing
  // gathered.
  return Routed([&]() -> absl::StatusOr<v1::EmbeddingExportResponse> {
    std::vector<int64_t> keys, freqs, steps;
    std::string values;
    int64_t dim = 0;
    v1::EmbeddingExportRequest request;
    request.set_name(std::string(name));
    request.set_page_size(page_size);
    VS_RETURN_IF_ERROR(ForEachEmbeddingPage(
        request, [&](v1::EmbeddingExportResponse& page) -> absl::Status {
          VS_ASSIGN_OR_RETURN(Tensor k, TensorFromProto(page.mutable_keys()));
          VS_ASSIGN_OR_RETURN(Tensor v, TensorFromProto(page.mutable_values()));
          VS_ASSIGN_OR_RETURN(Tensor f,
                              TensorFromProto(page.mutable_frequencies()));
          VS_ASSIGN_OR_RETURN(Tensor s,
                              TensorFromProto(page.mutable_last_steps()));
          const size_t n = static_cast<size_t>(k.dims()[0]);
          const auto append = [n](const Tensor& t, std::vector<int64_t>& to) {
            const size_t at = to.size();
            to.resize(at + n);
            memcpy(to.data() + at, t.bytes().data(), n * 8);
          };
          append(k, keys);
          append(f, freqs);
          append(s, steps);
          values += v.bytes();
          dim = v.dims()[1];
          return absl::OkStatus();
        }));
    const int64_t n = static_cast<int64_t>(keys.size());
    v1::EmbeddingExportResponse out;
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, keys),
                  out.mutable_keys());
    TensorToProto(*Tensor::FromBytes(v1::DT_FLOAT, {n, dim}, std::move(values)),
                  out.mutable_values());
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, freqs),
                  out.mutable_frequencies());
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, steps),
                  out.mutable_last_steps());
    out.set_done(true);
    return out;
  });
}

absl::StatusOr<int64_t> Client::EmbeddingImport(absl::string_view name,
                                                const Tensor& keys,
                                                const Tensor& values,
                                                const Tensor* frequencies,
                                                const Tensor* last_steps) {
  v1::EmbeddingImportRequest request;
  request.set_name(std::string(name));
  TensorToProto(keys, request.mutable_keys());
  TensorToProto(values, request.mutable_values());
  if (frequencies != nullptr) {
    TensorToProto(*frequencies, request.mutable_frequencies());
  }
  if (last_steps != nullptr) {
    TensorToProto(*last_steps, request.mutable_last_steps());
  }
  VS_ASSIGN_OR_RETURN(const v1::EmbeddingImportResponse imported,
                      EmbeddingImport(std::move(request)));
  return imported.imported();
}

absl::StatusOr<v1::EmbeddingImportResponse> Client::EmbeddingImport(
    v1::EmbeddingImportRequest request) {
  const bool idempotent = request.has_id() || Identify(request.mutable_id());
  const std::string name = request.name();
  return Routed([&]() -> absl::StatusOr<v1::EmbeddingImportResponse> {
    std::vector<v1::EmbeddingImportRequest> split(shards_.size());
    std::vector<int> parts = {0};
    if (shards_.size() == 1) {
      split[0] = request;
    } else {
      VS_ASSIGN_OR_RETURN(parts, SplitImport(request, split));
    }
    std::vector<v1::EmbeddingImportResponse> replies(shards_.size());
    VS_RETURN_IF_ERROR(WithClusterNearMatches(
        name, InParallel(parts, [&](int i) {
          MarkSpan(parts, split[i]);
          return Run({i, "EmbeddingImport", name}, idempotent,
                     [&](auto& stub, grpc::ClientContext* context) {
                       return stub.EmbeddingImport(context, split[i],
                                                   &replies[i]);
                     });
        })));
    v1::EmbeddingImportResponse sum;
    for (int i : parts) {
      sum.set_imported(sum.imported() + replies[i].imported());
      sum.set_removed(sum.removed() + replies[i].removed());
      sum.set_duplicate(sum.duplicate() || replies[i].duplicate());
    }
    return sum;
  });
}

absl::StatusOr<std::vector<int>> Client::SplitImport(
    const v1::EmbeddingImportRequest& request,
    std::vector<v1::EmbeddingImportRequest>& split) const {
  v1::EmbeddingImportRequest copy = request;
  VS_ASSIGN_OR_RETURN(const Tensor keys, TensorFromProto(copy.mutable_keys()));
  VS_ASSIGN_OR_RETURN(const std::vector<std::vector<int64_t>> rows,
                      SplitKeys(keys));
  std::vector<std::vector<int64_t>> removed(shards_.size());
  std::optional<Tensor> remove_keys;
  if (request.remove_keys().dtype() != v1::DT_INVALID) {
    VS_ASSIGN_OR_RETURN(remove_keys,
                        TensorFromProto(copy.mutable_remove_keys()));
    VS_ASSIGN_OR_RETURN(removed, SplitKeys(*remove_keys));
  }
  // Each tensor of rows, split as the keys (absent ones stay absent).
  std::vector<std::pair<v1::Tensor*, absl::string_view>> columns = {
      {copy.mutable_values(), "rows"},
      {copy.mutable_frequencies(), "frequencies"},
      {copy.mutable_last_steps(), "last steps"}};
  for (v1::EmbeddingSlotRows& slot : *copy.mutable_slots()) {
    columns.push_back({slot.mutable_values(), "slot values"});
  }
  std::vector<std::optional<Tensor>> tensors;
  for (auto& [proto, what] : columns) {
    if (proto->dtype() == v1::DT_INVALID) {
      tensors.emplace_back();
      continue;
    }
    VS_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(proto));
    VS_RETURN_IF_ERROR(CheckRowsPerKey(request.name(), what, keys, &t));
    tensors.emplace_back(std::move(t));
  }
  std::vector<int> parts;
  for (int i = 0; i < num_shards(); ++i) {
    if (rows[i].empty() && removed[i].empty() && i != 0) continue;
    parts.push_back(i);
    v1::EmbeddingImportRequest& part = split[i];
    part.set_name(request.name());
    *part.mutable_id() = request.id();
    for (const v1::EmbeddingSlotRows& slot : request.slots()) {
      v1::EmbeddingSlotRows* named = part.add_slots();
      named->set_name(slot.name());
      named->set_initial(slot.initial());
    }
    TensorToProto(TakeRows(keys, rows[i]), part.mutable_keys());
    if (remove_keys.has_value()) {
      TensorToProto(TakeRows(*remove_keys, removed[i]),
                    part.mutable_remove_keys());
    }
    std::vector<v1::Tensor*> to = {part.mutable_values(),
                                   part.mutable_frequencies(),
                                   part.mutable_last_steps()};
    for (v1::EmbeddingSlotRows& slot : *part.mutable_slots()) {
      to.push_back(slot.mutable_values());
    }
    for (size_t c = 0; c < tensors.size(); ++c) {
      if (tensors[c].has_value()) {
        TensorToProto(TakeRows(*tensors[c], rows[i]), to[c]);
      } else {
        to[c]->Clear();
      }
    }
  }
  return parts;
}

}  // namespace varscope
