#include "client/cli/listing.h"

#include <algorithm>
#include <string>

#include "common/names.h"
#include "common/status.h"

namespace varscope::cli {

absl::Status ForEachPage(
    Client& client, absl::string_view scope, bool recursive, int32_t page_size,
    absl::FunctionRef<absl::Status(const v1::ListVariablesResponse&)> fn) {
  v1::ListVariablesRequest request;
  request.set_scope(std::string(scope));
  request.set_recursive(recursive);
  request.set_page_size(page_size);
  return client.ForEachPage(std::move(request), fn);
}

absl::Status ForEachVariable(
    Client& client, absl::string_view scope, int32_t page_size,
    absl::FunctionRef<absl::Status(const v1::VariableInfo&)> fn) {
  int64_t seen = 0;
  VS_RETURN_IF_ERROR(
      ForEachPage(client, scope, /*recursive=*/true, page_size,
                  [&](const v1::ListVariablesResponse& page) -> absl::Status {
                    for (const ListEntry& entry : page.entries()) {
                      ++seen;
                      VS_RETURN_IF_ERROR(fn(entry.variable()));
                    }
                    return absl::OkStatus();
                  }));
  if (seen > 0 || scope.empty()) return absl::OkStatus();
  VS_ASSIGN_OR_RETURN(v1::VariableInfo info, client.Stat(scope));
  return fn(info);
}

Variable VariableFromInfo(const std::shared_ptr<Client>& client,
                          v1::VariableInfo info) {
  v1::GetVariableResponse response;
  *response.mutable_variable() = std::move(info);
  return Variable(client, std::move(response));
}

absl::StatusOr<Variable> ResolveVariable(const std::shared_ptr<Client>& client,
                                         absl::string_view name) {
  absl::StatusOr<v1::VariableInfo> info = client->Stat(name);
  if (info.ok()) return VariableFromInfo(client, *std::move(info));
  if (!absl::IsNotFound(info.status())) return info.status();
  absl::StatusOr<v1::VariableInfo> part0 =
      client->Stat(JoinName(name, "part_0"));
  if (!part0.ok() || part0->slice().full_name() != name) return info.status();
  v1::GetVariableRequest request;
  request.set_name(std::string(name));
  request.set_mode(v1::REUSE);
  request.set_dtype(part0->dtype());
  VS_ASSIGN_OR_RETURN(v1::GetVariableResponse whole,
                      client->GetVariable(request));
  return Variable(client, std::move(whole));
}

v1::VariableInfo WholeInfo(const Variable& variable) {
  v1::VariableInfo info = variable.info();
  if (!variable.partitioned()) return info;
  int64_t bytes = 0, version = 0, updated = 0;
  for (const Variable& part : variable.parts()) {
    bytes += part.info().byte_size();
    version = std::max(version, part.info().version());
    updated = std::max(updated, part.info().update_time_micros());
  }
  info.set_byte_size(bytes);
  info.set_version(version);
  info.set_update_time_micros(updated);
  return info;
}

}  // namespace varscope::cli
