// Cluster identities and TF_CONFIG, shared by varscoped (which records its
// identity at first start) and the clients (which check it at connect).
#ifndef VARSCOPE_COMMON_CLUSTER_H_
#define VARSCOPE_COMMON_CLUSTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "varscope/v1/cluster.pb.h"

namespace varscope {

// What TensorFlow's TF_CONFIG environment variable says about the cluster
// and this task.
struct TfConfig {
  // cluster.ps: the parameter servers in cluster order; empty when absent.
  std::vector<std::string> ps;
  // task.type and task.index; "" and 0 when absent.
  std::string task_type;
  int64_t task_index = 0;
};

// Parses TF_CONFIG's text. A missing `cluster`, `ps` or `task` leaves its
// fields empty. INVALID_ARGUMENT if the text is not a JSON object, cluster.ps
// is not a list of strings, task.type is not a string or task.index is not
// a non-negative integer.
absl::StatusOr<TfConfig> ParseTfConfig(absl::string_view text);

// The id of a cluster configured with `shards` (in cluster order) and no
// explicit id: 16 hex digits of a hash of the list, the same in every
// process and version, so every shard started with the same list agrees.
std::string DerivedClusterId(const std::vector<std::string>& shards);

// "shard 1 of 3 of cluster ID (shards a:7070,b:7070,c:7070)", "a shard
// removed from cluster ID (shards a:7070,b:7070)" for a store a re-shard
// took out, or "a standalone server (not a shard of a cluster)" for an
// identity without shards.
std::string DescribeShard(const v1::ClusterIdentity& identity);

// The call metadata key by which a client of a cluster tells each shard the
// cluster id it routes names for. A shard whose id differs (the cluster was
// re-sharded since the client checked it) refuses the call with
// FAILED_PRECONDITION and a message starting with kStaleClusterPrefix; the
// client then learns the new shard list (ServerInfo.cluster) and routes the
// call again.
inline constexpr char kClusterIdMetadataKey[] = "varscope-cluster-id";
inline constexpr char kStaleClusterPrefix[] = "Stale cluster: ";

// Metadata a call carries to pass a cluster pause (AdminService.Pause): the
// id of the pause that holds; its holder's own changes under it send it.
inline constexpr char kPauseIdMetadataKey[] = "varscope-pause-id";

}  // namespace varscope

#endif  // VARSCOPE_COMMON_CLUSTER_H_
