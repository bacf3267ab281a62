#include "common/cluster.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "nlohmann/json.hpp"

namespace varscope {

absl::StatusOr<TfConfig> ParseTfConfig(absl::string_view text) {
  using Json = nlohmann::json;
  const Json config = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) {
    return absl::InvalidArgumentError("TF_CONFIG is not a JSON object");
  }
  TfConfig parsed;
  const Json cluster = config.value("cluster", Json::object());
  if (cluster.is_object() && cluster.contains("ps")) {
    const Json& ps = cluster.at("ps");
    if (!ps.is_array() ||
        !std::all_of(ps.begin(), ps.end(),
                     [](const Json& task) { return task.is_string(); })) {
      return absl::InvalidArgumentError(
          "TF_CONFIG's cluster.ps is not a list of HOST:PORT strings");
    }
    for (const Json& task : ps) parsed.ps.push_back(task.get<std::string>());
  }
  const Json task = config.value("task", Json::object());
  if (!task.is_object()) return parsed;
  if (task.contains("type")) {
    if (!task.at("type").is_string()) {
      return absl::InvalidArgumentError(
          "TF_CONFIG's task.type is not a string");
    }
    parsed.task_type = task.at("type").get<std::string>();
  }
  if (task.contains("index")) {
    if (!task.at("index").is_number_unsigned()) {
      return absl::InvalidArgumentError(
          "TF_CONFIG's task.index is not a non-negative integer");
    }
    parsed.task_index = task.at("index").get<int64_t>();
  }
  return parsed;
}

std::string DerivedClusterId(const std::vector<std::string>& shards) {
  return absl::StrFormat("%016x", StableHash(absl::StrJoin(shards, ","), 0));
}

std::string DescribeShard(const v1::ClusterIdentity& identity) {
  if (identity.shards().empty()) {
    return "a standalone server (not a shard of a cluster)";
  }
  if (identity.removed()) {
    return absl::StrCat("a shard removed from cluster ", identity.cluster_id(),
                        " (shards ", absl::StrJoin(identity.shards(), ","),
                        ")");
  }
  return absl::StrCat("shard ", identity.shard_index(), " of ",
                      identity.shard_count(), " of cluster ",
                      identity.cluster_id(), " (shards ",
                      absl::StrJoin(identity.shards(), ","), ")");
}

}  // namespace varscope
