#include "client/cli/reshard.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/admin_client.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "common/cluster.h"
#include "common/names.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

// Variables per export and install call.
constexpr size_t kNamesPerCall = 256;

// How long each pause of a re-shard holds the old shards (renewed after
// each source's copies): the copies of one shard must end within it.
constexpr absl::Duration kPauseLease = absl::Seconds(60);

// Moving a large variable takes a while.
constexpr absl::Duration kMinMoveTimeout = absl::Minutes(10);

// One shard of the old or the new list.
struct Shard {
  std::string address;
  std::unique_ptr<Client> client;  // of this address alone: no cluster check
  std::unique_ptr<AdminClient> admin;
  v1::ServerInfo info;         // as found
  v1::ClusterIdentity target;  // its place after the re-shard
  int from = -1;               // its position in --from, or -1
  bool switched() const {
    return google::protobuf::util::MessageDifferencer::Equals(info.cluster(),
                                                              target);
  }
};

absl::StatusOr<std::vector<std::string>> ParseList(absl::string_view flag,
                                                   absl::string_view text) {
  constexpr absl::string_view kList =
      "every shard's HOST:PORT, comma-separated, in cluster order";
  if (text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " needs ", kList));
  }
  std::vector<std::string> list = absl::StrSplit(text, ',');
  std::set<absl::string_view> seen;
  for (const std::string& entry : list) {
    if (entry.empty() ||
        std::any_of(entry.begin(), entry.end(), absl::ascii_isspace)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " has the entry '", entry, "'; give ", kList));
    }
    if (!seen.insert(entry).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " lists ", entry, " twice; give ", kList));
    }
  }
  return list;
}

// Every variable of `shard` (a part with its whole's name), by name.
absl::StatusOr<std::vector<v1::VariableInfo>> VariablesOf(Shard& shard,
                                                          int32_t page_size) {
  std::vector<v1::VariableInfo> vars;
  VS_RETURN_IF_ERROR(ForEachPage(*shard.client, "", /*recursive=*/true,
                                 page_size,
                                 [&](const v1::ListVariablesResponse& page) {
                                   for (const auto& entry : page.entries()) {
                                     vars.push_back(entry.variable());
                                   }
                                   return absl::OkStatus();
                                 }));
  return vars;
}

// The names of `vars` that the new list places on another shard than
// `shard`, by their new shard's address.
std::map<std::string, std::vector<std::string>> Moving(
    const Shard& shard, const std::vector<v1::VariableInfo>& vars,
    const std::vector<std::string>& to) {
  std::map<std::string, std::vector<std::string>> moving;
  const int count = static_cast<int>(to.size());
  for (const v1::VariableInfo& var : vars) {
    const std::string& dest = to[ShardOf(var.name(), count)];
    if (dest != shard.address) moving[dest].push_back(var.name());
  }
  return moving;
}

// Copies `names` from `source` to `dest`, with the source's exactly-once
// records, replacing copies an interrupted run left (the cluster has not
// switched yet: only the source's copy is in use). Returns the bytes moved.
absl::StatusOr<int64_t> Copy(Shard& source, Shard& dest,
                             const std::vector<std::string>& names,
                             const std::vector<v1::AppliedRecord>& applied) {
  int64_t bytes = 0;
  for (size_t at = 0; at < names.size(); at += kNamesPerCall) {
    const size_t end = std::min(names.size(), at + kNamesPerCall);
    v1::ExportVariablesRequest exported;
    exported.mutable_names()->Assign(names.begin() + at, names.begin() + end);
    VS_ASSIGN_OR_RETURN(v1::ExportVariablesResponse variables,
                        source.admin->ExportVariables(exported));
    v1::RemoveVariablesRequest stale;
    *stale.mutable_names() = exported.names();
    VS_RETURN_IF_ERROR(dest.admin->RemoveVariables(stale).status());
    v1::InstallVariablesRequest install;
    for (v1::MovedVariable& var : *variables.mutable_variables()) {
      bytes += static_cast<int64_t>(var.data().size());
      *install.add_variables() = std::move(var);
    }
    if (at == 0)
      install.mutable_applied()->Assign(applied.begin(), applied.end());
    VS_RETURN_IF_ERROR(dest.admin->InstallVariables(install).status());
  }
  return bytes;
}

}  // namespace

absl::Status Reshard(const CommandContext& context,
                     const ReshardOptions& options) {
  VS_ASSIGN_OR_RETURN(const std::vector<std::string> from,
                      ParseList("--from", options.from));
  VS_ASSIGN_OR_RETURN(const std::vector<std::string> to,
                      ParseList("--to", options.to));
  if (from == to) {
    return absl::InvalidArgumentError(
        "--from and --to list the same shards in the same order: nothing "
        "moves");
  }
  const std::string new_id =
      options.cluster_id.empty() ? DerivedClusterId(to) : options.cluster_id;

  // Every shard, with its place now and after.
  std::vector<Shard> shards;
  std::vector<std::string> addresses = from;
  for (const std::string& address : to) {
    if (std::find(from.begin(), from.end(), address) == from.end()) {
      addresses.push_back(address);
    }
  }
  ClientOptions client_options;
  client_options.timeout = context.timeout;
  client_options.retry_timeout = absl::Seconds(2);
  client_options.security = context.security;
  for (const std::string& address : addresses) {
    Shard& shard = shards.emplace_back();
    shard.address = address;
    shard.client = Client::Connect(address, client_options);
    shard.admin = AdminClient::Connect(
        address, std::max(context.timeout, kMinMoveTimeout), context.security);
    VS_ASSIGN_OR_RETURN(shard.info, shard.client->GetServerInfo());
    shard.from = static_cast<int>(std::find(from.begin(), from.end(), address) -
                                  from.begin());
    if (shard.from == static_cast<int>(from.size())) shard.from = -1;
    const auto at = std::find(to.begin(), to.end(), address);
    shard.target.set_cluster_id(new_id);
    shard.target.set_shard_count(static_cast<int32_t>(to.size()));
    shard.target.mutable_shards()->Assign(to.begin(), to.end());
    if (at == to.end()) {
      shard.target.set_removed(true);
    } else {
      shard.target.set_shard_index(static_cast<int32_t>(at - to.begin()));
    }
  }

  // Check every place before anything changes.
  std::string old_id;
  for (const Shard& shard : shards) {
    if (shard.from >= 0 && !shard.switched()) {
      old_id = shard.info.cluster().cluster_id();
      break;
    }
  }
  for (const Shard& shard : shards) {
    if (shard.switched()) continue;
    const v1::ClusterIdentity& now = shard.info.cluster();
    if (shard.from >= 0) {
      if (now.shard_index() == shard.from &&
          now.shard_count() == static_cast<int32_t>(from.size()) &&
          now.cluster_id() == old_id && !now.removed() &&
          !now.shards().empty()) {
        continue;
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "Cannot re-shard: ", shard.address, " is ", DescribeShard(now),
          ", but --from lists it as shard ", shard.from, " of ", from.size(),
          (old_id.empty() ? "" : absl::StrCat(" of cluster ", old_id)),
          ". Give --from the cluster's shards in its order"));
    }
    if (now.shards().empty() && shard.info.variable_count() == 0) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "Cannot re-shard: the new shard ", shard.address, " is ",
        DescribeShard(now), " and holds ",
        VariablesText(shard.info.variable_count()),
        "; start a shard a re-shard adds on an empty data directory, with "
        "the new list's flags (--cluster=",
        absl::StrJoin(to, ","), " --shard-index=", shard.target.shard_index(),
        ") or none"));
  }
  std::map<std::string, std::vector<v1::VariableInfo>> vars;
  for (Shard& shard : shards) {
    if (shard.from < 0) continue;
    VS_ASSIGN_OR_RETURN(vars[shard.address],
                        VariablesOf(shard, context.page_size));
    for (const v1::VariableInfo& var : vars[shard.address]) {
      if (!var.has_embedding()) continue;
      return absl::FailedPreconditionError(absl::StrCat(
          "Cannot re-shard: ", var.name(),
          " is an embedding variable, whose rows are spread over the shards "
          "by key; re-sharding does not move them. Save it with varscope "
          "embedding-export and delete it first"));
    }
  }
  const bool all_switched =
      std::all_of(shards.begin(), shards.end(),
                  [](const Shard& s) { return s.switched(); });

  auto shard_at = [&](const std::string& address) -> Shard& {
    return *std::find_if(shards.begin(), shards.end(),
                         [&](const Shard& s) { return s.address == address; });
  };
  // Under a pause of the old shards (writes held back and retried by the
  // workers, half-applied steps completed first): copy, switch, delete.
  int64_t moved = 0;
  int64_t moved_bytes = 0;
  int64_t removed = 0;
  std::vector<AdminClient*> old_shards;
  for (Shard& shard : shards) {
    if (shard.from >= 0) old_shards.push_back(shard.admin.get());
  }
  CutOptions cut_options;
  cut_options.reason = "a re-shard";
  cut_options.lease = kPauseLease;
  VS_RETURN_IF_ERROR(WithConsistentCut(
      old_shards, cut_options, [&](const Cut& cut) -> absl::Status {
        // Renews every old shard's pause (ABORTED if one ended: then writes
        // went on, and the copies may be stale).
        auto renew = [&]() -> absl::Status {
          v1::PauseRequest pause;
          pause.set_pause_id(cut.pause_id);
          pause.set_reason(cut_options.reason);
          pause.set_lease_micros(absl::ToInt64Microseconds(kPauseLease));
          for (AdminClient* admin : cut.shards) {
            VS_RETURN_IF_ERROR(admin->Pause(pause).status());
          }
          return absl::OkStatus();
        };
        // Copy what moves, unless an earlier run switched every shard already
        // (then the new copies are the ones in use, and complete).
        if (!all_switched) {
          for (Shard& source : shards) {
            if (source.from < 0) continue;
            // Listed again under the pause: nothing is created meanwhile.
            VS_ASSIGN_OR_RETURN(const std::vector<v1::VariableInfo> held,
                                VariablesOf(source, context.page_size));
            const auto moving = Moving(source, held, to);
            if (moving.empty()) continue;
            v1::ExportVariablesRequest records;
            records.set_with_applied(true);
            VS_ASSIGN_OR_RETURN(const v1::ExportVariablesResponse applied,
                                source.admin->ExportVariables(records));
            const std::vector<v1::AppliedRecord> records_list(
                applied.applied().begin(), applied.applied().end());
            for (const auto& [dest, names] : moving) {
              VS_ASSIGN_OR_RETURN(
                  const int64_t bytes,
                  Copy(source, shard_at(dest), names, records_list));
              moved += static_cast<int64_t>(names.size());
              moved_bytes += bytes;
              *context.out << "Copied " << VariablesText(names.size()) << " ("
                           << HumanBytes(bytes) << ") from " << source.address
                           << " to " << dest << "\n";
            }
            VS_RETURN_IF_ERROR(renew());
          }
        }
        VS_RETURN_IF_ERROR(renew());
        // Switch: from now on each shard refuses the old cluster's clients,
        // which then follow to the new list.
        for (Shard& shard : shards) {
          if (shard.switched()) continue;
          v1::SetClusterIdentityRequest request;
          *request.mutable_identity() = shard.target;
          VS_RETURN_IF_ERROR(shard.admin->SetClusterIdentity(request).status());
          *shard.info.mutable_cluster() = shard.target;
        }
        // Delete the copies that moved away.
        for (Shard& source : shards) {
          if (source.from < 0) continue;
          VS_ASSIGN_OR_RETURN(const std::vector<v1::VariableInfo> now,
                              VariablesOf(source, context.page_size));
          for (const auto& [dest, names] : Moving(source, now, to)) {
            v1::RemoveVariablesRequest request;
            request.mutable_names()->Assign(names.begin(), names.end());
            VS_ASSIGN_OR_RETURN(const v1::RemoveVariablesResponse response,
                                source.admin->RemoveVariables(request));
            removed += response.removed();
          }
        }
        return absl::OkStatus();
      }));
  *context.out << "Re-sharded "
               << (old_id.empty() ? "" : "cluster " + old_id + " ") << "("
               << from.size() << " shards) into cluster " << new_id << " ("
               << to.size() << " shards: " << absl::StrJoin(to, ",")
               << "): " << VariablesText(moved) << " copied ("
               << HumanBytes(moved_bytes) << "), " << VariablesText(removed)
               << " deleted from their old shards\n";
  return absl::OkStatus();
}

}  // namespace varscope::cli
