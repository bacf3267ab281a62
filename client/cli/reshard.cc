#include "client/cli/reshard.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <functional>
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
    v1::ClusterIdentity place = info.cluster();
    place.clear_resharded_from();
    return google::protobuf::util::MessageDifferencer::Equals(place, target);
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
    if (var.has_embedding()) continue;  // on every shard (MoveRows)
    const std::string& dest = to[ShardOf(var.name(), count)];
    if (dest != shard.address) moving[dest].push_back(var.name());
  }
  return moving;
}

// Copies `names` from `source` to `dest`, replacing copies an interrupted
// run left (the cluster has not switched yet: only the source's copy is in
// use). Returns the bytes moved.
absl::StatusOr<int64_t> Copy(Shard& source, Shard& dest,
                             const std::vector<std::string>& names) {
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
    VS_RETURN_IF_ERROR(dest.admin->InstallVariables(install).status());
  }
  return bytes;
}

// Gives every shard of `to` but `source` the source's exactly-once records,
// before anything moves from it: a step applied there before the pause,
// whose reply was lost and which its worker retries on the new shard of a
// moved variable or embedding row, is then answered as a repeat, not applied
// again. A shard keeps what it holds of the records already.
absl::Status CopyRecords(Shard& source, const std::vector<std::string>& to,
                         const std::function<Shard&(const std::string&)>& at) {
  v1::ExportVariablesRequest records;
  records.set_with_applied(true);
  VS_ASSIGN_OR_RETURN(v1::ExportVariablesResponse exported,
                      source.admin->ExportVariables(records));
  if (exported.applied().empty()) return absl::OkStatus();
  v1::InstallVariablesRequest install;
  *install.mutable_applied() = std::move(*exported.mutable_applied());
  for (const std::string& dest : to) {
    if (dest == source.address) continue;
    VS_RETURN_IF_ERROR(at(dest).admin->InstallVariables(install).status());
  }
  return absl::OkStatus();
}

// A get_embedding_variable that creates the embedding variable `info` as
// the old shards hold it (same options, initializer and seed).
v1::GetEmbeddingVariableRequest Recreate(const v1::VariableInfo& info) {
  v1::GetEmbeddingVariableRequest get;
  get.set_name(info.name());
  get.set_mode(v1::AUTO_REUSE);
  get.set_embedding_dim(info.embedding().embedding_dim());
  get.set_key_dtype(info.embedding().key_dtype());
  get.set_value_dtype(v1::DT_FLOAT);
  *get.mutable_initializer() = info.initializer();
  get.set_filter_freq(info.embedding().filter_freq());
  get.set_steps_to_live(info.embedding().steps_to_live());
  get.set_trainable(info.trainable());
  return get;
}

// `keys` as a tensor of the key dtype `dtype` (keys fit it: they came from
// a table of it).
Tensor KeyTensor(const std::vector<int64_t>& keys, DType dtype) {
  const int64_t n = static_cast<int64_t>(keys.size());
  if (dtype == v1::DT_INT64) {
    return Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, keys);
  }
  return Tensor::FromVector<int32_t>(
      v1::DT_INT32, {n}, std::vector<int32_t>(keys.begin(), keys.end()));
}

// The rows of one exported page.
struct Rows {
  std::vector<int64_t> keys;
  Tensor values, frequencies, last_steps;
  std::vector<Tensor> slots;  // as the page's slots
};

absl::StatusOr<Rows> RowsOf(v1::EmbeddingExportResponse& page) {
  Rows rows;
  VS_ASSIGN_OR_RETURN(const Tensor keys, TensorFromProto(page.mutable_keys()));
  const auto flat = keys.flat<int64_t>();
  rows.keys.assign(flat.begin(), flat.end());
  VS_ASSIGN_OR_RETURN(rows.values, TensorFromProto(page.mutable_values()));
  VS_ASSIGN_OR_RETURN(rows.frequencies,
                      TensorFromProto(page.mutable_frequencies()));
  VS_ASSIGN_OR_RETURN(rows.last_steps,
                      TensorFromProto(page.mutable_last_steps()));
  for (v1::EmbeddingSlotRows& slot : *page.mutable_slots()) {
    VS_ASSIGN_OR_RETURN(rows.slots.emplace_back(),
                        TensorFromProto(slot.mutable_values()));
  }
  return rows;
}

// Walks the stored rows of embedding variable `info` on the shard of
// `source` (a client of that shard alone) in key order: imports each row
// (with its frequency, last step and slots) into the shard `dest(key)`
// names (none: nullptr), and then removes from the source each row
// `drop(key)` is true for. Returns how many rows it copied.
absl::StatusOr<int64_t> MoveRows(Client& source, const v1::VariableInfo& info,
                                 const std::function<Client*(int64_t)>& dest,
                                 const std::function<bool(int64_t)>& drop) {
  int64_t copied = 0;
  const DType key_dtype = info.embedding().key_dtype();
  const int64_t dim = info.embedding().embedding_dim();
  v1::EmbeddingExportRequest request;
  request.set_name(info.name());
  request.set_with_slots(true);
  VS_RETURN_IF_ERROR(source.ForEachEmbeddingPage(
      request, [&](v1::EmbeddingExportResponse& page) -> absl::Status {
        VS_ASSIGN_OR_RETURN(const Rows rows, RowsOf(page));
        // Their names and initial values (RowsOf took the values).
        const std::vector<v1::EmbeddingSlotRows> named(page.slots().begin(),
                                                       page.slots().end());
        std::map<Client*, std::vector<int64_t>> moving;
        std::vector<int64_t> dropped;
        for (size_t i = 0; i < rows.keys.size(); ++i) {
          if (Client* to = dest(rows.keys[i])) {
            moving[to].push_back(static_cast<int64_t>(i));
          }
          if (drop(rows.keys[i])) dropped.push_back(rows.keys[i]);
        }
        for (const auto& [to, positions] : moving) {
          v1::EmbeddingImportRequest import;
          import.set_name(info.name());
          std::vector<int64_t> keys;
          for (int64_t p : positions) keys.push_back(rows.keys[p]);
          TensorToProto(KeyTensor(keys, key_dtype), import.mutable_keys());
          TensorToProto(TakeRows(rows.values, positions),
                        import.mutable_values());
          TensorToProto(TakeRows(rows.frequencies, positions),
                        import.mutable_frequencies());
          TensorToProto(TakeRows(rows.last_steps, positions),
                        import.mutable_last_steps());
          for (size_t s = 0; s < named.size(); ++s) {
            v1::EmbeddingSlotRows* slot = import.add_slots();
            slot->set_name(named[s].name());
            slot->set_initial(named[s].initial());
            TensorToProto(TakeRows(rows.slots[s], positions),
                          slot->mutable_values());
          }
          VS_RETURN_IF_ERROR(to->EmbeddingImport(import).status());
          copied += static_cast<int64_t>(positions.size());
        }
        if (dropped.empty()) return absl::OkStatus();
        v1::EmbeddingImportRequest remove;
        remove.set_name(info.name());
        TensorToProto(KeyTensor({}, key_dtype), remove.mutable_keys());
        TensorToProto(Tensor(v1::DT_FLOAT, {0, dim}), remove.mutable_values());
        TensorToProto(KeyTensor(dropped, key_dtype),
                      remove.mutable_remove_keys());
        return source.EmbeddingImport(remove).status();
      }));
  return copied;
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
  // The embedding variables (on every old shard, each holding its keys'
  // rows), by name.
  std::map<std::string, v1::VariableInfo> embeddings;
  for (Shard& shard : shards) {
    if (shard.from < 0) continue;
    VS_ASSIGN_OR_RETURN(const std::vector<v1::VariableInfo> vars,
                        VariablesOf(shard, context.page_size));
    for (const v1::VariableInfo& var : vars) {
      if (var.has_embedding()) embeddings.emplace(var.name(), var);
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
  int64_t rows_moved = 0;
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
        // Clients of one shard each whose changes pass the pause.
        std::map<std::string, std::unique_ptr<Client>> paused;
        for (const Shard& shard : shards) {
          ClientOptions options = client_options;
          options.pause_id = cut.pause_id;
          paused[shard.address] = Client::Connect(shard.address, options);
        }
        const auto no_copy = [](int64_t) -> Client* { return nullptr; };
        const auto no_drop = [](int64_t) { return false; };
        // Copy what moves, unless an earlier run switched every shard already
        // (then the new copies are the ones in use, and complete).
        if (!all_switched) {
          for (Shard& source : shards) {
            if (source.from < 0) continue;
            // Listed again under the pause: nothing is created meanwhile.
            VS_ASSIGN_OR_RETURN(const std::vector<v1::VariableInfo> held,
                                VariablesOf(source, context.page_size));
            const auto moving = Moving(source, held, to);
            if (moving.empty() && embeddings.empty()) continue;
            VS_RETURN_IF_ERROR(CopyRecords(source, to, shard_at));
            for (const auto& [dest, names] : moving) {
              VS_ASSIGN_OR_RETURN(const int64_t bytes,
                                  Copy(source, shard_at(dest), names));
              moved += static_cast<int64_t>(names.size());
              moved_bytes += bytes;
              *context.out << "Copied " << VariablesText(names.size()) << " ("
                           << HumanBytes(bytes) << ") from " << source.address
                           << " to " << dest << "\n";
            }
            VS_RETURN_IF_ERROR(renew());
          }
          // Each embedding variable on every new shard; then each shard
          // drops the rows the old list does not place on it (copies an
          // interrupted run left), and each old shard copies the rows the
          // new list places elsewhere.
          for (const auto& [name, info] : embeddings) {
            for (const std::string& address : to) {
              VS_RETURN_IF_ERROR(paused.at(address)
                                     ->GetEmbeddingVariable(Recreate(info))
                                     .status());
            }
            for (const Shard& shard : shards) {
              VS_RETURN_IF_ERROR(
                  MoveRows(*paused.at(shard.address), info, no_copy,
                           [&](int64_t key) {
                             return EmbeddingShardOf(
                                        key, static_cast<int>(from.size())) !=
                                    shard.from;
                           })
                      .status());
            }
            int64_t rows = 0;
            for (const Shard& source : shards) {
              if (source.from < 0) continue;
              VS_ASSIGN_OR_RETURN(
                  const int64_t copied,
                  MoveRows(
                      *paused.at(source.address), info,
                      [&](int64_t key) -> Client* {
                        const std::string& dest = to[EmbeddingShardOf(
                            key, static_cast<int>(to.size()))];
                        return dest == source.address ? nullptr
                                                      : paused.at(dest).get();
                      },
                      no_drop));
              rows += copied;
            }
            rows_moved += rows;
            *context.out << "Copied " << rows << " rows of embedding variable "
                         << name << " to their shards\n";
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
          if (shard.from >= 0) {
            // For clients started later with the old list (see Client).
            v1::ClusterIdentity& before =
                *request.mutable_identity()->mutable_resharded_from();
            before = shard.info.cluster();
            before.clear_resharded_from();
          }
          VS_RETURN_IF_ERROR(shard.admin->SetClusterIdentity(request).status());
          *shard.info.mutable_cluster() = request.identity();
        }
        // Delete the copies that moved away: variables, embedding rows, and
        // on a removed shard its embedding variables.
        for (Shard& source : shards) {
          if (source.from < 0) continue;
          VS_ASSIGN_OR_RETURN(const std::vector<v1::VariableInfo> now,
                              VariablesOf(source, context.page_size));
          std::map<std::string, std::vector<std::string>> moving =
              Moving(source, now, to);
          for (const v1::VariableInfo& var : now) {
            if (!var.has_embedding()) continue;
            VS_RETURN_IF_ERROR(
                MoveRows(*paused.at(source.address), var, no_copy,
                         [&](int64_t key) {
                           return source.target.removed() ||
                                  EmbeddingShardOf(
                                      key, static_cast<int>(to.size())) !=
                                      source.target.shard_index();
                         })
                    .status());
            if (source.target.removed()) moving[""].push_back(var.name());
          }
          for (const auto& [dest, names] : moving) {
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
               << " deleted from their old shards";
  if (!embeddings.empty()) {
    *context.out << "; " << rows_moved << " rows of "
                 << (embeddings.size() == 1
                         ? std::string("1 embedding variable")
                         : absl::StrCat(embeddings.size(),
                                        " embedding variables"))
                 << " moved";
  }
  *context.out << "\n";
  return absl::OkStatus();
}

}  // namespace varscope::cli
