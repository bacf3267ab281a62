#include "server/service/cluster_identity.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/cluster.h"
#include "common/status.h"

namespace varscope::server {
namespace {

constexpr size_t kMaxClusterIdLength = 64;

bool IsClusterIdChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
}

// The flags that start a store with `identity` again.
std::string FlagsOf(const v1::ClusterIdentity& identity) {
  const std::vector<std::string> shards(identity.shards().begin(),
                                        identity.shards().end());
  std::string flags = absl::StrCat("--cluster=", absl::StrJoin(shards, ","),
                                   " --shard-index=", identity.shard_index());
  if (identity.cluster_id() != DerivedClusterId(shards)) {
    absl::StrAppend(&flags, " --cluster-id=", identity.cluster_id());
  }
  return flags;
}

}  // namespace

absl::StatusOr<std::optional<v1::ClusterIdentity>> ConfiguredIdentity(
    const ClusterOptions& options) {
  constexpr absl::string_view kList =
      "every shard's HOST:PORT, comma-separated, in cluster order";
  if (options.shards.empty()) {
    if (options.shard_index >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shard-index needs --cluster (", kList, ")"));
    }
    if (!options.cluster_id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cluster-id needs --cluster (", kList, ")"));
    }
    return std::nullopt;
  }
  std::set<absl::string_view> seen;
  for (const std::string& shard : options.shards) {
    if (shard.empty() ||
        std::any_of(shard.begin(), shard.end(), absl::ascii_isspace)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cluster has the entry '", shard, "'; give ", kList));
    }
    if (!seen.insert(shard).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cluster lists ", shard, " twice; give ", kList));
    }
  }
  const int64_t count = static_cast<int64_t>(options.shards.size());
  if (options.shard_index < 0) {
    return absl::InvalidArgumentError(
        "--cluster needs --shard-index (this server's position in the list, "
        "from 0)");
  }
  if (options.shard_index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard-index=", options.shard_index,
                     " is not a position in --cluster (0 to ", count - 1, ")"));
  }
  if (!options.cluster_id.empty() &&
      (options.cluster_id.size() > kMaxClusterIdLength ||
       !std::all_of(options.cluster_id.begin(), options.cluster_id.end(),
                    IsClusterIdChar))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cluster-id='", options.cluster_id, "' is not 1 to ",
                     kMaxClusterIdLength, " letters, digits, '.', '_' or '-'"));
  }
  v1::ClusterIdentity identity;
  identity.set_cluster_id(options.cluster_id.empty()
                              ? DerivedClusterId(options.shards)
                              : options.cluster_id);
  identity.set_shard_index(static_cast<int32_t>(options.shard_index));
  identity.set_shard_count(static_cast<int32_t>(count));
  identity.mutable_shards()->Assign(options.shards.begin(),
                                    options.shards.end());
  return identity;
}

absl::StatusOr<std::optional<ClusterOptions>> ClusterOptionsFromTfConfig(
    absl::string_view tf_config) {
  if (tf_config.empty()) return std::nullopt;
  const absl::StatusOr<TfConfig> config = ParseTfConfig(tf_config);
  if (!config.ok()) return config.status();
  if (config->task_type != "ps") return std::nullopt;
  const int64_t count = static_cast<int64_t>(config->ps.size());
  if (config->task_index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("TF_CONFIG's task is ps task ", config->task_index,
                     ", but its cluster.ps has no task ", config->task_index,
                     " (it lists ", count, ")"));
  }
  ClusterOptions options;
  options.shards = config->ps;
  options.shard_index = config->task_index;
  return options;
}

absl::StatusOr<v1::ClusterIdentity> SettleIdentity(
    Storage& storage, const std::string& data_dir,
    const std::optional<v1::ClusterIdentity>& configured) {
  VS_ASSIGN_OR_RETURN(const std::optional<v1::ClusterIdentity> recorded,
                      storage.ReadClusterIdentity());
  if (recorded.has_value()) {
    // The flags give a place, not where a re-shard moved the store from.
    v1::ClusterIdentity place = *recorded;
    place.clear_resharded_from();
    if (configured.has_value() &&
        !google::protobuf::util::MessageDifferencer::Equals(*configured,
                                                            place)) {
      constexpr absl::string_view kNoFlags =
          "no cluster flags and no ps task's TF_CONFIG";
      return absl::FailedPreconditionError(absl::StrCat(
          "Data directory ", data_dir, " is the store of ",
          DescribeShard(*recorded), ", but varscoped was started as ",
          DescribeShard(*configured),
          ". A store keeps the place it was first started in (clients find "
          "its variables by that place): start it with ",
          recorded->shards().empty()
              ? std::string(kNoFlags)
              : absl::StrCat(FlagsOf(*recorded), " (or with ", kNoFlags, ")"),
          ", or start the new shard on a new data directory"));
    }
    return *recorded;
  }
  v1::ClusterIdentity identity;
  if (configured.has_value()) {
    identity = *configured;
  } else {
    identity.set_shard_count(1);  // standalone: shard 0 of 1
  }
  VS_RETURN_IF_ERROR(storage.WriteClusterIdentity(identity));
  return identity;
}

v1::ClusterIdentity ClusterPlace::Get() const {
  absl::ReaderMutexLock l(&mu_);
  return identity_;
}

absl::StatusOr<v1::ClusterIdentity> ClusterPlace::Change(
    Storage& storage, v1::ClusterIdentity identity) {
  ClusterOptions options;
  options.shards.assign(identity.shards().begin(), identity.shards().end());
  options.shard_index = identity.removed() ? 0 : identity.shard_index();
  options.cluster_id = identity.cluster_id();
  if (options.shards.empty() || options.cluster_id.empty()) {
    return absl::InvalidArgumentError(
        "A new cluster identity needs the cluster's id and its shards");
  }
  if (identity.shard_count() != identity.shards_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "A new cluster identity lists ", identity.shards_size(),
        " shards but gives a shard_count of ", identity.shard_count()));
  }
  // The flags' checks: entries, index and id.
  VS_RETURN_IF_ERROR(ConfiguredIdentity(options).status());
  absl::MutexLock l(&mu_);
  VS_RETURN_IF_ERROR(storage.WriteClusterIdentity(identity));
  std::swap(identity_, identity);
  return identity;
}

absl::Status ClusterPlace::Admit(absl::string_view client_cluster_id) const {
  if (client_cluster_id.empty()) return absl::OkStatus();
  absl::ReaderMutexLock l(&mu_);
  if (client_cluster_id == identity_.cluster_id() && !identity_.removed()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      kStaleClusterPrefix, "this server is now ", DescribeShard(identity_),
      ", but the call comes from a client of cluster ", client_cluster_id,
      ". The cluster was re-sharded: connect to its new shards, in order: ",
      absl::StrJoin(identity_.shards(), ",")));
}

}  // namespace varscope::server
