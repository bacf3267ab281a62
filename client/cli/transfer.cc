#include "client/cli/transfer.h"

#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "client/cli/npy.h"
#include "client/cli/progress.h"
#include "client/cli/values.h"
#include "client/cli/zip.h"
#include "common/files.h"
#include "common/names.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

using Json = nlohmann::json;

constexpr absl::string_view kFormat = "varscope-npz";
constexpr int kFormatVersion = 1;
constexpr absl::string_view kNpySuffix = ".npy";

std::string SidecarPath(const std::string& path,
                        const std::string& metadata_path) {
  return metadata_path.empty() ? absl::StrCat(path, ".json") : metadata_path;
}

bool Within(absl::string_view name, absl::string_view scope) {
  return scope.empty() || name == scope || IsUnderScope(name, scope);
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("Cannot rename ", from, " to ", to));
  }
  return absl::OkStatus();
}

// The metadata of an exported variable (see transfer.h).
Json ExportedMetadata(const Variable& variable, DType npz_dtype) {
  v1::VariableInfo info = WholeInfo(variable);
  info.set_version(variable.version());
  Json meta = VariableInfoToJson(info);
  meta["npz_dtype"] = std::string(DTypeName(npz_dtype));
  if (variable.partitioned()) {
    meta["partitions"] = variable.partitions();
    Json parts = Json::array();
    for (const Variable& part : variable.parts()) {
      const auto& offset = part.info().slice().var_offset();
      parts.push_back(
          {{"name", part.name()},
           {"shape", part.shape()},
           {"offset", std::vector<int64_t>(offset.begin(), offset.end())},
           {"version", part.info().version()}});
    }
    meta["parts"] = std::move(parts);
  }
  return meta;
}

// The GetVariable call that makes `target` for an imported array: from its
// metadata when there is some, else from the array itself. Throws
// nlohmann::json::exception on metadata of the wrong types (the caller
// catches it).
absl::StatusOr<v1::GetVariableRequest> ImportRequest(const std::string& target,
                                                     const Tensor& array,
                                                     const Json* meta,
                                                     bool overwrite) {
  v1::GetVariableRequest request;
  request.set_name(target);
  request.set_mode(overwrite ? v1::AUTO_REUSE : v1::CREATE);
  if (meta == nullptr) {
    request.set_dtype(array.dtype());
    request.mutable_shape()->mutable_dims()->Assign(array.dims().begin(),
                                                    array.dims().end());
    request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
    return request;
  }
  VS_ASSIGN_OR_RETURN(const DType dtype,
                      ParseDType(meta->at("dtype").get<std::string>()));
  request.set_dtype(dtype);
  const std::vector<int64_t> dims =
      meta->at("shape").get<std::vector<int64_t>>();
  request.mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
  request.set_trainable(meta->value("trainable", true));
  if (meta->contains("collections")) {
    const std::vector<std::string> names =
        meta->at("collections").get<std::vector<std::string>>();
    request.mutable_collections()->mutable_names()->Assign(names.begin(),
                                                           names.end());
  }
  if (meta->contains("initializer")) {
    const auto parsed = google::protobuf::util::JsonStringToMessage(
        meta->at("initializer").dump(), request.mutable_initializer());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Bad initializer in the metadata of ", target, ": ",
                       parsed.ToString()));
    }
  } else {
    request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  }
  if (meta->contains("partitions")) {
    const std::vector<int64_t> partitions =
        meta->at("partitions").get<std::vector<int64_t>>();
    request.mutable_partitioner()
        ->mutable_explicit_()
        ->mutable_partitions()
        ->Assign(partitions.begin(), partitions.end());
  }
  return request;
}

// One array of the archive and where it goes.
struct ImportItem {
  const ZipReader::Member* member;
  std::string source;  // the name it was exported under
  std::string target;
  const Json* meta;  // null without metadata
};

// The sidecar of an archive: `json` is null for a plain .npz.
struct Metadata {
  Json json;
  std::string scope;  // the exported scope
};

absl::StatusOr<Metadata> ReadMetadata(const ImportOptions& options) {
  const std::string path = SidecarPath(options.path, options.metadata_path);
  std::error_code error;
  if (options.metadata_path.empty() && !std::filesystem::exists(path, error)) {
    return Metadata();  // a plain .npz
  }
  VS_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  Metadata metadata;
  metadata.json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  const absl::Status bad = absl::InvalidArgumentError(absl::StrCat(
      path,
      " is not Varscope export metadata (a JSON object with \"format\": \"",
      kFormat, "\", \"scope\" and \"variables\")"));
  try {
    const Json& j = metadata.json;
    if (!j.is_object() || j.value("format", "") != kFormat ||
        !j.contains("variables") || !j.at("variables").is_object()) {
      return bad;
    }
    metadata.scope = j.value("scope", "");
    if (j.value("format_version", 0) > kFormatVersion) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " has format_version ", j.value("format_version", 0),
          "; this varscope reads up to ", kFormatVersion));
    }
  } catch (const Json::exception& e) {
    return bad;
  }
  return metadata;
}

// Fails with ALREADY_EXISTS naming the targets that exist.
absl::Status CheckNoneExists(const CommandContext& context,
                             const std::vector<ImportItem>& items) {
  std::vector<std::string> taken;
  for (const ImportItem& item : items) {
    for (const std::string& name :
         {item.target, JoinName(item.target, "part_0")}) {
      const absl::Status status = context.client->Stat(name).status();
      if (status.ok()) {
        taken.push_back(item.target);
        break;
      }
      if (!absl::IsNotFound(status)) return status;
    }
  }
  if (taken.empty()) return absl::OkStatus();
  const size_t total = taken.size();
  if (taken.size() > 5) taken.resize(5);
  const bool one = total == 1;
  return absl::AlreadyExistsError(
      absl::StrCat(VariablesText(static_cast<int64_t>(total)),
                   " to import already ", one ? "exists" : "exist", " (",
                   absl::StrJoin(taken, ", "), total > 5 ? ", ..." : "",
                   "); nothing was imported. Pass --overwrite to replace ",
                   one ? "it" : "them"));
}

absl::Status ImportOne(const CommandContext& context, const ZipReader& zip,
                       const ImportItem& item, bool overwrite, int64_t* bytes) {
  VS_ASSIGN_OR_RETURN(std::string content, zip.Read(*item.member));
  absl::StatusOr<Tensor> array = ParseNpy(content);
  if (!array.ok()) {
    return absl::Status(
        array.status().code(),
        absl::StrCat(item.member->name, ": ", array.status().message()));
  }
  absl::StatusOr<v1::GetVariableRequest> request;
  try {
    request = ImportRequest(item.target, *array, item.meta, overwrite);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("Bad metadata for ", item.source, ": ", e.what()));
  }
  VS_RETURN_IF_ERROR(request.status());
  VS_ASSIGN_OR_RETURN(Tensor value,
                      ConformToVariable(*std::move(array), request->dtype(),
                                        Dims(request->shape()), item.target));
  *bytes += static_cast<int64_t>(value.bytes().size());
  VS_ASSIGN_OR_RETURN(v1::GetVariableResponse response,
                      context.client->GetVariable(*request));
  return Variable(context.client, std::move(response))
      .Assign(std::move(value))
      .status();
}

}  // namespace

absl::Status Export(const CommandContext& context,
                    const ExportOptions& options) {
  const std::string metadata_path =
      SidecarPath(options.path, options.metadata_path);
  const std::string npz_partial = absl::StrCat(options.path, ".partial");
  const std::string metadata_partial = absl::StrCat(metadata_path, ".partial");
  VS_ASSIGN_OR_RETURN(std::unique_ptr<ZipWriter> zip,
                      ZipWriter::Create(npz_partial));
  Json variables = Json::object();
  absl::flat_hash_set<std::string> wholes_done;
  Progress progress(context.err, context.progress, "export", 0);
  int64_t count = 0, bytes = 0;
  absl::Status status = ForEachVariable(
      *context.client, options.scope, context.page_size,
      [&](const v1::VariableInfo& info) -> absl::Status {
        absl::StatusOr<Variable> variable;
        if (info.has_slice() &&
            Within(info.slice().full_name(), options.scope)) {
          // The whole partitioned variable, once, as one array.
          if (!wholes_done.insert(info.slice().full_name()).second) {
            return absl::OkStatus();
          }
          variable = ResolveVariable(context.client, info.slice().full_name());
        } else {
          variable = VariableFromInfo(context.client, info);
        }
        VS_RETURN_IF_ERROR(variable.status());
        VS_ASSIGN_OR_RETURN(Tensor value, variable->Read());
        const int64_t size = static_cast<int64_t>(value.bytes().size());
        if (value.dtype() == v1::DT_BFLOAT16) value = Cast(value, v1::DT_FLOAT);
        VS_ASSIGN_OR_RETURN(const std::string header,
                            NpyHeader(value.dtype(), value.dims()));
        const absl::string_view pieces[] = {header, value.bytes()};
        VS_RETURN_IF_ERROR(
            zip->Add(absl::StrCat(variable->name(), kNpySuffix), pieces));
        variables[variable->name()] =
            ExportedMetadata(*variable, value.dtype());
        ++count;
        bytes += size;
        progress.Add(size);
        return absl::OkStatus();
      });
  progress.Finish();
  if (status.ok()) status = zip->Finish();
  if (status.ok()) {
    const Json metadata = {{"format", kFormat},
                           {"format_version", kFormatVersion},
                           {"scope", options.scope},
                           {"variables", std::move(variables)}};
    status = WriteFile(
        metadata_partial,
        metadata.dump(1, ' ', false, Json::error_handler_t::replace) + "\n");
  }
  if (status.ok()) status = Rename(npz_partial, options.path);
  if (status.ok()) status = Rename(metadata_partial, metadata_path);
  if (!status.ok()) {
    std::remove(npz_partial.c_str());
    std::remove(metadata_partial.c_str());
    return status;
  }
  if (context.json) {
    *context.out << DumpJson({{"exported", count},
                              {"bytes", bytes},
                              {"file", options.path},
                              {"metadata", metadata_path}})
                 << "\n";
  } else {
    *context.out << "Exported " << VariablesText(count) << " ("
                 << HumanBytes(bytes) << ") to " << options.path
                 << "; metadata in " << metadata_path << "\n";
  }
  return absl::OkStatus();
}

absl::Status Import(const CommandContext& context,
                    const ImportOptions& options) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<ZipReader> zip,
                      ZipReader::Open(options.path));
  VS_ASSIGN_OR_RETURN(const Metadata metadata, ReadMetadata(options));
  std::vector<ImportItem> items;
  for (const ZipReader::Member& member : zip->members()) {
    if (!absl::EndsWith(member.name, kNpySuffix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.path, ": member ", member.name, " is not a .npy array"));
    }
    ImportItem item{
        &member, member.name.substr(0, member.name.size() - kNpySuffix.size()),
        "", nullptr};
    item.target = item.source;
    if (options.into.has_value()) {
      absl::string_view relative = item.source;
      if (!metadata.scope.empty() &&
          absl::StartsWith(relative, absl::StrCat(metadata.scope, "/"))) {
        relative.remove_prefix(metadata.scope.size() + 1);
      }
      item.target = JoinName(*options.into, relative);
    }
    VS_RETURN_IF_ERROR(ValidateName(item.target));
    if (metadata.json.is_object()) {
      const Json& variables = metadata.json.at("variables");
      auto it = variables.find(item.source);
      if (it == variables.end() || !it->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat("The metadata has no entry for ", item.source));
      }
      item.meta = &*it;
    }
    items.push_back(std::move(item));
  }
  if (!options.overwrite) VS_RETURN_IF_ERROR(CheckNoneExists(context, items));
  Progress progress(context.err, context.progress, "import",
                    static_cast<int64_t>(items.size()));
  int64_t bytes = 0;
  for (const ImportItem& item : items) {
    const int64_t before = bytes;
    const absl::Status status =
        ImportOne(context, *zip, item, options.overwrite, &bytes);
    if (!status.ok()) {
      progress.Finish();
      return status;
    }
    progress.Add(bytes - before);
  }
  progress.Finish();
  const int64_t count = static_cast<int64_t>(items.size());
  if (context.json) {
    *context.out << DumpJson({{"imported", count},
                              {"bytes", bytes},
                              {"file", options.path}})
                 << "\n";
  } else {
    *context.out << "Imported " << VariablesText(count) << " ("
                 << HumanBytes(bytes) << ") from " << options.path;
    if (options.into.has_value()) *context.out << " into " << *options.into;
    *context.out << "\n";
  }
  return absl::OkStatus();
}

namespace {

constexpr const char* kEmbeddingMembers[] = {"keys", "values", "frequencies",
                                             "last_steps"};

}  // namespace

absl::Status EmbeddingExport(const CommandContext& context,
                             const EmbeddingTransferOptions& options) {
  VS_ASSIGN_OR_RETURN(v1::EmbeddingExportResponse rows,
                      context.client->EmbeddingExport(options.name));
  v1::Tensor* members[] = {rows.mutable_keys(), rows.mutable_values(),
                           rows.mutable_frequencies(),
                           rows.mutable_last_steps()};
  const std::string partial = absl::StrCat(options.path, ".partial");
  VS_ASSIGN_OR_RETURN(std::unique_ptr<ZipWriter> zip,
                      ZipWriter::Create(partial));
  absl::Status status;
  int64_t count = 0;
  for (size_t i = 0; i < 4 && status.ok(); ++i) {
    absl::StatusOr<Tensor> array = TensorFromProto(members[i]);
    status = array.status();
    if (!status.ok()) break;
    if (i == 0) count = array->dims()[0];
    absl::StatusOr<std::string> header =
        NpyHeader(array->dtype(), array->dims());
    status = header.status();
    if (!status.ok()) break;
    const absl::string_view pieces[] = {*header, array->bytes()};
    status = zip->Add(absl::StrCat(kEmbeddingMembers[i], kNpySuffix), pieces);
  }
  if (status.ok()) status = zip->Finish();
  if (status.ok()) status = Rename(partial, options.path);
  if (!status.ok()) {
    std::remove(partial.c_str());
    return status;
  }
  if (context.json) {
    *context.out << DumpJson({{"exported", count}, {"file", options.path}})
                 << "\n";
  } else {
    *context.out << "Exported " << count << " rows of " << options.name
                 << " to " << options.path << "\n";
  }
  return absl::OkStatus();
}

absl::Status EmbeddingImport(const CommandContext& context,
                             const EmbeddingTransferOptions& options) {
  VS_ASSIGN_OR_RETURN(std::unique_ptr<ZipReader> zip,
                      ZipReader::Open(options.path));
  std::optional<Tensor> arrays[4];
  for (const ZipReader::Member& member : zip->members()) {
    for (size_t i = 0; i < 4; ++i) {
      if (member.name != absl::StrCat(kEmbeddingMembers[i], kNpySuffix)) {
        continue;
      }
      VS_ASSIGN_OR_RETURN(const std::string content, zip->Read(member));
      absl::StatusOr<Tensor> array = ParseNpy(content);
      if (!array.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            options.path, ": ", member.name, ": ", array.status().message()));
      }
      arrays[i] = *std::move(array);
    }
  }
  for (size_t i = 0; i < 2; ++i) {
    if (!arrays[i].has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.path, " has no ", kEmbeddingMembers[i], kNpySuffix,
          " (an embedding export holds keys.npy and "
          "values.npy)"));
    }
  }
  VS_ASSIGN_OR_RETURN(const int64_t imported,
                      context.client->EmbeddingImport(
                          options.name, *arrays[0], *arrays[1],
                          arrays[2].has_value() ? &*arrays[2] : nullptr,
                          arrays[3].has_value() ? &*arrays[3] : nullptr));
  if (context.json) {
    *context.out << DumpJson({{"imported", imported}, {"file", options.path}})
                 << "\n";
  } else {
    *context.out << "Imported " << imported << " rows into " << options.name
                 << " from " << options.path << "\n";
  }
  return absl::OkStatus();
}

}  // namespace varscope::cli
