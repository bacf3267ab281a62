#include "client/cli/store_commands.h"

#include <algorithm>
#include <filesystem>
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

absl::StatusOr<std::unique_ptr<AdminClient>> Admin(
    const CommandContext& context) {
  if (absl::StrContains(context.server_address, ',')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Each server of a cluster has its own store: pass --server HOST:PORT "
        "of one of ",
        context.server_address));
  }
  return AdminClient::Connect(context.server_address,
                              std::max(context.timeout, kMinCopyTimeout),
                              context.security);
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
  request.set_directory(options.directory);
  request.set_return_versions(options.versions);
  return request;
}

// What a checkpoint or backup `response` holds, in JSON.
template <typename Response>
Json CopyJson(const Response& response, const CopyOptions& options) {
  Json j = ContentsJson(response.contents());
  j["directory"] = options.directory;
  j["seconds"] = static_cast<double>(response.duration_micros()) / 1e6;
  return j;
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
      list.push_back(std::move(j));
    }
    *context.out << DumpJson(list) << "\n";
    return absl::OkStatus();
  }
  std::ostream& out = *context.out;
  out << absl::StrFormat("%4s  %-27s  %9s  %10s  %5s  %10s  %10s\n", "ID",
                         "CREATED", "VARIABLES", "BYTES", "FILES", "SIZE",
                         "NEW");
  for (const server::BackupSummary& b : backups) {
    out << absl::StrFormat(
        "%4d  %-27s  %9d  %10s  %5d  %10s  %10s\n", b.backup_id,
        FormatMicros(b.timestamp_seconds * 1000000), b.contents.variables,
        HumanBytes(b.contents.bytes), b.files, HumanBytes(b.size_bytes),
        HumanBytes(b.added_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Checkpoint(const CommandContext& context,
                        const CopyOptions& options) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<AdminClient> admin, Admin(context));
  VS_ASSIGN_OR_RETURN(
      const v1::CheckpointResponse response,
      admin->Checkpoint(CopyRequest<v1::CheckpointRequest>(options)));
  if (context.json) {
    *context.out << DumpJson(CopyJson(response, options)) << "\n";
    return absl::OkStatus();
  }
  *context.out << "Checkpoint in " << options.directory
               << " on the server: " << ContentsText(response.contents())
               << ", in " << Seconds(response.duration_micros()) << "\n";
  PrintVersions(*context.out, response.contents());
  return absl::OkStatus();
}

absl::Status Backup(const CommandContext& context,
                    const BackupOptions& options) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<AdminClient> admin, Admin(context));
  v1::BackupRequest request = CopyRequest<v1::BackupRequest>(options);
  request.set_keep(options.keep);
  VS_ASSIGN_OR_RETURN(const v1::BackupResponse response,
                      admin->Backup(request));
  const std::vector<uint32_t> deleted(response.deleted_backup_ids().begin(),
                                      response.deleted_backup_ids().end());
  if (context.json) {
    Json j = CopyJson(response, options);
    j["backup_id"] = response.backup_id();
    j["files"] = response.files();
    j["size_bytes"] = response.size_bytes();
    j["added_bytes"] = response.added_bytes();
    j["deleted_backup_ids"] = deleted;
    *context.out << DumpJson(j) << "\n";
    return absl::OkStatus();
  }
  *context.out << "Backup " << response.backup_id() << " in "
               << options.directory
               << " on the server: " << ContentsText(response.contents())
               << "; " << response.files() << " files, "
               << HumanBytes(response.size_bytes()) << ", "
               << HumanBytes(response.added_bytes()) << " new, in "
               << Seconds(response.duration_micros()) << "\n";
  if (!deleted.empty()) {
    *context.out << "Deleted backup" << (deleted.size() == 1 ? " " : "s ")
                 << absl::StrJoin(deleted, ", ") << " (keeping the newest "
                 << options.keep << ")\n";
  }
  PrintVersions(*context.out, response.contents());
  return absl::OkStatus();
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
  VS_ASSIGN_OR_RETURN(const server::RestoredStore restored,
                      server::Storage::Restore(
                          options.source, options.backup_id, options.data_dir));
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
