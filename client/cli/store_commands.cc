#include "client/cli/store_commands.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/admin_client.h"
#include "client/cli/format.h"
#include "common/cluster.h"
#include "common/status.h"
#include "server/storage/storage.h"

namespace varscope::cli {
namespace {

using Json = nlohmann::json;

// Copies of a large store take a while.
constexpr absl::Duration kMinCopyTimeout = absl::Hours(1);

std::unique_ptr<AdminClient> Admin(const CommandContext& context) {
  return AdminClient::Connect(context.server_address,
                              std::max(context.timeout, kMinCopyTimeout),
                              context.security);
}

bool IsCluster(const CommandContext& context) {
  return absl::StrContains(context.server_address, ',');
}

std::string Seconds(int64_t micros) {
  return absl::StrFormat("%.2f s", static_cast<double>(micros) / 1e6);
}

// "N variables, B, write sequence S" of a copy.
std::string ContentsText(const v1::StoreContents& contents) {
  return absl::StrCat(VariablesText(contents.variables()), ", ",
                      HumanBytes(contents.bytes()), ", write sequence ",
                      contents.sequence());
}

Json ContentsJson(const v1::StoreContents& contents) {
  Json j = {{"variables", contents.variables()},
            {"bytes", contents.bytes()},
            {"sequence", contents.sequence()}};
  if (!contents.versions().empty()) {
    j["versions"] = std::map<std::string, int64_t>(contents.versions().begin(),
                                                   contents.versions().end());
  }
  return j;
}

template <typename Request>
Request CopyRequest(const CopyOptions& options) {
  Request request;
  request.set_return_versions(options.versions);
  return request;
}

// The versions of a copy, one variable per line, in name order.
void PrintVersions(std::ostream& out, const v1::StoreContents& contents) {
  if (contents.versions().empty()) return;
  out << absl::StrFormat("%8s  %s\n", "VERSION", "NAME");
  for (const auto& [name, version] : std::map<std::string, int64_t>(
           contents.versions().begin(), contents.versions().end())) {
    out << absl::StrFormat("%8d  %s\n", version, name);
  }
}

v1::StoreContents ToProto(const server::StoreSummary& summary) {
  v1::StoreContents contents;
  contents.set_sequence(summary.sequence);
  contents.set_variables(summary.variables);
  contents.set_bytes(summary.bytes);
  return contents;
}

absl::Status ListBackups(const CommandContext& context,
                         const std::string& directory) {
  VS_ASSIGN_OR_RETURN(const std::vector<server::BackupSummary> backups,
                      server::Storage::ListBackups(directory));
  if (context.json) {
    Json list = Json::array();
    for (const server::BackupSummary& b : backups) {
      Json j = ContentsJson(ToProto(b.contents));
      j["backup_id"] = b.backup_id;
      j["created"] = FormatMicros(b.timestamp_seconds * 1000000);
      j["files"] = b.files;
      j["size_bytes"] = b.size_bytes;
      j["added_bytes"] = b.added_bytes;
      if (!b.contents.cut.empty()) j["cut"] = b.contents.cut;
      list.push_back(std::move(j));
    }
    *context.out << DumpJson(list) << "\n";
    return absl::OkStatus();
  }
  std::ostream& out = *context.out;
  out << absl::StrFormat("%4s  %-27s  %9s  %10s  %5s  %10s  %10s  %s\n", "ID",
                         "CREATED", "VARIABLES", "BYTES", "FILES", "SIZE",
                         "NEW", "CUT");
  for (const server::BackupSummary& b : backups) {
    out << absl::StrFormat(
        "%4d  %-27s  %9d  %10s  %5d  %10s  %10s  %s\n", b.backup_id,
        FormatMicros(b.timestamp_seconds * 1000000), b.contents.variables,
        HumanBytes(b.contents.bytes), b.files, HumanBytes(b.size_bytes),
        HumanBytes(b.added_bytes),
        b.contents.cut.empty() ? "-" : b.contents.cut);
  }
  return absl::OkStatus();
}

// A copy of one store: its request runs `copy`, and it prints as
// `describe` says.
template <typename Response>
struct CopyKind {
  // The copy into `directory` (under the pause `pause_id`, if set).
  std::function<absl::StatusOr<Response>(
      AdminClient&, const std::string& directory, const std::string& pause_id)>
      copy;
  // Its JSON (beyond CopyJson's), and its text line after "in DIR on WHERE:
  // CONTENTS" and the lines that follow it.
  std::function<void(const Response&, Json&)> json;
  std::function<void(const Response&, std::ostream&)> text;
  // "Checkpoint", "Backup 3".
  std::function<std::string(const Response&)> title;
  // "Checkpoints", "Backups".
  std::string plural;
};

template <typename Response>
void PrintCopy(std::ostream& out, const CopyKind<Response>& kind,
               const Response& response, const std::string& directory,
               const std::string& where) {
  out << kind.title(response) << " in " << directory << " on " << where << ": "
      << ContentsText(response.contents());
  kind.text(response, out);
}

template <typename Response>
Json CopyToJson(const CopyKind<Response>& kind, const Response& response,
                const std::string& directory) {
  Json j = ContentsJson(response.contents());
  j["directory"] = directory;
  j["seconds"] = static_cast<double>(response.duration_micros()) / 1e6;
  kind.json(response, j);
  return j;
}

template <typename Response>
absl::Status CopyOne(const CommandContext& context, const CopyOptions& options,
                     const CopyKind<Response>& kind) {
  const std::unique_ptr<AdminClient> admin = Admin(context);
  VS_ASSIGN_OR_RETURN(const Response response,
                      kind.copy(*admin, options.directory, ""));
  if (context.json) {
    *context.out << DumpJson(CopyToJson(kind, response, options.directory))
                 << "\n";
    return absl::OkStatus();
  }
  PrintCopy(*context.out, kind, response, options.directory, "the server");
  PrintVersions(*context.out, response.contents());
  return absl::OkStatus();
}

// Every shard of the cluster copies its store into DIR/shard-I under its
// backup root, in parallel, at one consistent cut (WithConsistentCut): each
// shard's pause ends as soon as its copy point is taken.
template <typename Response>
absl::Status CopyCluster(const CommandContext& context,
                         const CopyOptions& options,
                         const CopyKind<Response>& kind) {
  const std::vector<std::string>& addresses = context.client->addresses();
  const size_t n = addresses.size();
  std::vector<std::string> directories;
  for (size_t i = 0; i < n; ++i) {
    directories.push_back(absl::StrCat(options.directory, "/shard-", i));
  }
  std::vector<absl::StatusOr<Response>> responses(
      n, absl::UnknownError("not run"));
  Cut taken;
  CutOptions cut_options;
  cut_options.check_held_after = false;  // each copy checks its pause
  VS_RETURN_IF_ERROR(WithConsistentCut(
      *context.client, std::max(context.timeout, kMinCopyTimeout), cut_options,
      [&](const Cut& cut) -> absl::Status {
        taken = cut;
        std::vector<std::thread> threads;
        for (size_t i = 0; i < n; ++i) {
          threads.emplace_back([&, i] {
            responses[i] =
                kind.copy(*cut.shards[i], directories[i], cut.pause_id);
          });
        }
        for (std::thread& thread : threads) thread.join();
        for (size_t i = 0; i < n; ++i) {
          if (!responses[i].ok()) {
            return absl::Status(
                responses[i].status().code(),
                absl::StrCat("Shard ", i, " of ", n, " at ", addresses[i], ": ",
                             responses[i].status().message()));
          }
        }
        return absl::OkStatus();
      }));
  int64_t variables = 0, bytes = 0;
  for (const absl::StatusOr<Response>& response : responses) {
    variables += (*response).contents().variables();
    bytes += (*response).contents().bytes();
  }
  if (context.json) {
    Json j = {{"directory", options.directory},
              {"cut", taken.pause_id},
              {"variables", variables},
              {"bytes", bytes},
              {"completed_steps", taken.completed},
              {"recovered_steps", taken.recovered},
              {"abandoned_steps", taken.abandoned},
              {"shards", Json::array()}};
    for (size_t i = 0; i < n; ++i) {
      Json shard = CopyToJson(kind, *responses[i], directories[i]);
      shard["shard"] = i;
      shard["server"] = addresses[i];
      j["shards"].push_back(std::move(shard));
    }
    *context.out << DumpJson(j) << "\n";
    return absl::OkStatus();
  }
  std::ostream& out = *context.out;
  out << kind.plural << " of the " << n << " shards at one consistent cut, "
      << taken.pause_id;
  if (taken.completed > 0) {
    out << " (" << taken.completed << " step"
        << (taken.completed == 1 ? "" : "s")
        << " half applied when the pause began completed in it)";
  }
  if (taken.recovered > 0) {
    out << " (" << taken.recovered << " step"
        << (taken.recovered == 1 ? "" : "s")
        << " completed from their keepers' intents)";
  }
  out << ":\n";
  for (size_t i = 0; i < n; ++i) {
    PrintCopy(out, kind, *responses[i], directories[i],
              absl::StrCat("shard ", i, " at ", addresses[i]));
  }
  out << "In all: " << VariablesText(variables) << ", " << HumanBytes(bytes)
      << "\n";
  for (const std::string& step : taken.abandoned) {
    out << "Warning: abandoned " << step
        << " is in the copies as the cluster holds it\n";
  }
  for (size_t i = 0; i < n; ++i) {
    if (!(*responses[i]).contents().versions().empty()) {
      out << "Shard " << i << ":\n";
      PrintVersions(out, (*responses[i]).contents());
    }
  }
  return absl::OkStatus();
}

template <typename Response>
absl::Status Copy(const CommandContext& context, const CopyOptions& options,
                  const CopyKind<Response>& kind) {
  return IsCluster(context) ? CopyCluster(context, options, kind)
                            : CopyOne(context, options, kind);
}

}  // namespace

absl::Status Recover(const CommandContext& context) {
  if (!IsCluster(context)) {
    return absl::FailedPreconditionError(
        absl::StrCat("Recovery needs the cluster's shard list, in its order "
                     "(--server HOST:PORT,HOST:PORT,...), not the one server ",
                     context.server_address));
  }
  VS_RETURN_IF_ERROR(context.client->CheckCluster());
  std::vector<std::unique_ptr<AdminClient>> admins;
  std::vector<AdminClient*> shards;
  for (const std::string& address : context.client->addresses()) {
    admins.push_back(
        AdminClient::Connect(address, context.timeout, context.security));
    shards.push_back(admins.back().get());
  }
  VS_ASSIGN_OR_RETURN(const Recovered recovered, RecoverSteps(shards, {}));
  if (context.json) {
    *context.out << DumpJson({{"completed", recovered.completed},
                              {"dropped", recovered.dropped}})
                 << "\n";
    return absl::OkStatus();
  }
  *context.out << "Completed " << recovered.completed << " step"
               << (recovered.completed == 1 ? "" : "s")
               << " that workers left half applied\n";
  for (const std::string& step : recovered.dropped) {
    *context.out << "Dropped " << step << "\n";
  }
  return absl::OkStatus();
}

absl::Status Checkpoint(const CommandContext& context,
                        const CopyOptions& options) {
  return Copy<v1::CheckpointResponse>(
      context, options,
      {.copy =
           [&](AdminClient& admin, const std::string& directory,
               const std::string& pause_id) {
             v1::CheckpointRequest request =
                 CopyRequest<v1::CheckpointRequest>(options);
             request.set_directory(directory);
             request.set_pause_id(pause_id);
             return admin.Checkpoint(request);
           },
       .json = [](const v1::CheckpointResponse&, Json&) {},
       .text =
           [](const v1::CheckpointResponse& response, std::ostream& out) {
             out << ", in " << Seconds(response.duration_micros()) << "\n";
           },
       .title = [](const v1::CheckpointResponse&) { return "Checkpoint"; },
       .plural = "Checkpoints"});
}

absl::Status Backup(const CommandContext& context,
                    const BackupOptions& options) {
  return Copy<v1::BackupResponse>(
      context, options,
      {.copy =
           [&](AdminClient& admin, const std::string& directory,
               const std::string& pause_id) {
             v1::BackupRequest request =
                 CopyRequest<v1::BackupRequest>(options);
             request.set_directory(directory);
             request.set_keep(options.keep);
             request.set_pause_id(pause_id);
             return admin.Backup(request);
           },
       .json =
           [](const v1::BackupResponse& response, Json& j) {
             j["backup_id"] = response.backup_id();
             j["files"] = response.files();
             j["size_bytes"] = response.size_bytes();
             j["added_bytes"] = response.added_bytes();
             j["deleted_backup_ids"] =
                 std::vector<uint32_t>(response.deleted_backup_ids().begin(),
                                       response.deleted_backup_ids().end());
           },
       .text =
           [&](const v1::BackupResponse& response, std::ostream& out) {
             out << "; " << response.files() << " files, "
                 << HumanBytes(response.size_bytes()) << ", "
                 << HumanBytes(response.added_bytes()) << " new, in "
                 << Seconds(response.duration_micros()) << "\n";
             const auto& deleted = response.deleted_backup_ids();
             if (!deleted.empty()) {
               out << "Deleted backup" << (deleted.size() == 1 ? " " : "s ")
                   << absl::StrJoin(deleted, ", ") << " (keeping the newest "
                   << options.keep << ")\n";
             }
           },
       .title =
           [](const v1::BackupResponse& response) {
             return absl::StrCat("Backup ", response.backup_id());
           },
       .plural = "Backups"});
}

// The id of the backup of cluster cut `cut` in `directory`. NOT_FOUND,
// listing the cuts there, if none is.
absl::StatusOr<uint32_t> BackupOfCut(const std::string& directory,
                                     const std::string& cut) {
  VS_ASSIGN_OR_RETURN(const std::vector<server::BackupSummary> backups,
                      server::Storage::ListBackups(directory));
  std::vector<std::string> cuts;
  for (const server::BackupSummary& b : backups) {
    if (b.contents.cut == cut) return b.backup_id;
    if (!b.contents.cut.empty()) {
      cuts.push_back(absl::StrCat(b.backup_id, " of ", b.contents.cut));
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "Backup directory ", directory, " holds no backup of cut ", cut, " (",
      cuts.empty()
          ? "none of its backups is of a cluster cut"
          : absl::StrCat("its backups of cuts: ", absl::StrJoin(cuts, ", ")),
      ")"));
}

absl::Status Restore(const CommandContext& context,
                     const RestoreOptions& options) {
  // A local path the user named: a missing one is a usage error.
  std::error_code error;
  if (!std::filesystem::is_directory(options.source, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.source,
                     " is not a directory (give a backup directory or a "
                     "checkpoint)"));
  }
  if (options.list) return ListBackups(context, options.source);
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError(
        "restore needs the new data directory (or --list)");
  }
  uint32_t backup_id = options.backup_id;
  if (!options.cut.empty()) {
    VS_ASSIGN_OR_RETURN(backup_id, BackupOfCut(options.source, options.cut));
  }
  VS_ASSIGN_OR_RETURN(
      const server::RestoredStore restored,
      server::Storage::Restore(options.source, backup_id, options.data_dir));
  const v1::StoreContents contents = ToProto(restored.contents);
  // A shard's store keeps its place in its cluster.
  const bool shard =
      restored.cluster.has_value() && !restored.cluster->shards().empty();
  if (context.json) {
    Json j = ContentsJson(contents);
    j["source"] = options.source;
    j["data_dir"] = options.data_dir;
    if (restored.backup_id != 0) j["backup_id"] = restored.backup_id;
    if (shard) j["cluster"] = DescribeShard(*restored.cluster);
    *context.out << DumpJson(j) << "\n";
    return absl::OkStatus();
  }
  *context.out << "Restored "
               << (restored.backup_id == 0
                       ? absl::StrCat("checkpoint ", options.source)
                       : absl::StrCat("backup ", restored.backup_id, " of ",
                                      options.source))
               << " into " << options.data_dir << ": " << ContentsText(contents)
               << "\n";
  if (shard) {
    *context.out << "It is " << DescribeShard(*restored.cluster)
                 << ", and stays that shard\n";
  }
  *context.out << "Serve it with: varscoped --data-dir=" << options.data_dir
               << "\n";
  return absl::OkStatus();
}

}  // namespace varscope::cli
