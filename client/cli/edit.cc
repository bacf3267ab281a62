#include "client/cli/edit.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "client/cli/npy.h"
#include "client/cli/values.h"
#include "common/files.h"
#include "common/names.h"
#include "common/shape.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

using Json = nlohmann::json;

// Calls `fn` on `name` if it is a variable and, when recursive, on every
// variable under `name/`: what Delete(name, recursive) removes.
absl::Status ForEachDoomed(
    const CommandContext& context, const std::string& name, bool recursive,
    absl::FunctionRef<void(const v1::VariableInfo&)> fn) {
  absl::StatusOr<v1::VariableInfo> info = context.client->Stat(name);
  if (info.ok()) {
    fn(*info);
  } else if (!absl::IsNotFound(info.status())) {
    return info.status();
  }
  if (!recursive) return absl::OkStatus();
  return ForEachPage(*context.client, name, /*recursive=*/true,
                     context.page_size,
                     [&](const v1::ListVariablesResponse& page) {
                       for (const ListEntry& e : page.entries()) {
                         fn(e.variable());
                       }
                       return absl::OkStatus();
                     });
}

// True if the next line of `in` is y or yes (any case).
bool ReadYes(std::istream& in) {
  std::string answer;
  if (!std::getline(in, answer)) return false;
  answer = absl::AsciiStrToLower(absl::StripAsciiWhitespace(answer));
  return answer == "y" || answer == "yes";
}

}  // namespace

absl::Status Set(const CommandContext& context, const SetOptions& options) {
  VS_ASSIGN_OR_RETURN(Variable variable,
                      ResolveVariable(context.client, options.name));
  Tensor value;
  if (options.npy_path.has_value()) {
    VS_ASSIGN_OR_RETURN(std::string bytes, ReadFile(*options.npy_path));
    VS_ASSIGN_OR_RETURN(Tensor array, ParseNpy(bytes));
    VS_ASSIGN_OR_RETURN(value,
                        ConformToVariable(std::move(array), variable.dtype(),
                                          variable.shape(), variable.name()));
  } else {
    VS_ASSIGN_OR_RETURN(value, ParseValue(options.value.value_or(""),
                                          variable.dtype(), variable.shape()));
  }
  VS_ASSIGN_OR_RETURN(UpdateResult result, variable.Assign(std::move(value)));
  if (context.json) {
    *context.out << DumpJson({{"name", variable.name()},
                              {"version", result.version}})
                 << "\n";
  } else {
    *context.out << "Set " << variable.name() << " ("
                 << DTypeName(variable.dtype()) << " "
                 << ShapeString(variable.shape()) << "): version "
                 << result.version << "\n";
  }
  return absl::OkStatus();
}

absl::Status Rm(const CommandContext& context, const RmOptions& options) {
  VS_RETURN_IF_ERROR(ValidateName(options.name));
  const bool ask = options.recursive && !options.yes && !options.dry_run;
  if (options.dry_run || ask) {
    int64_t count = 0, bytes = 0;
    std::optional<JsonArrayWriter> json;
    if (options.dry_run && context.json) json.emplace(context.out);
    VS_RETURN_IF_ERROR(ForEachDoomed(
        context, options.name, options.recursive,
        [&](const v1::VariableInfo& info) {
          ++count;
          bytes += info.byte_size();
          if (!options.dry_run) return;
          if (json.has_value()) {
            json->Add({{"name", info.name()}, {"bytes", info.byte_size()}});
          } else {
            *context.out << "would delete " << info.name() << "\n";
          }
        }));
    if (count == 0) {
      // Stat's NOT_FOUND lists similar names.
      const absl::Status missing = context.client->Stat(options.name).status();
      if (!missing.ok()) return missing;
      return absl::NotFoundError(
          absl::StrCat("Nothing named ", options.name, " exists."));
    }
    if (options.dry_run) {
      if (json.has_value()) {
        json->Close();
      } else {
        *context.out << VariablesText(count) << " (" << HumanBytes(bytes)
                     << ") would be deleted; nothing was deleted (dry run)\n";
      }
      return absl::OkStatus();
    }
    *context.err << "Delete " << VariablesText(count) << " ("
                 << HumanBytes(bytes) << ") under " << options.name
                 << "? [y/N] ";
    context.err->flush();
    if (!ReadYes(*context.in)) {
      return absl::CancelledError("Not confirmed; nothing was deleted");
    }
  }
  VS_ASSIGN_OR_RETURN(const int64_t deleted,
                      context.client->Delete(options.name, options.recursive));
  if (context.json) {
    *context.out << DumpJson({{"name", options.name}, {"deleted", deleted}})
                 << "\n";
  } else {
    *context.out << "Deleted " << VariablesText(deleted) << "\n";
  }
  return absl::OkStatus();
}

absl::Status Mv(const CommandContext& context, const MvOptions& options) {
  VS_ASSIGN_OR_RETURN(
      const int64_t renamed,
      context.client->Rename(options.old_name, options.new_name));
  if (context.json) {
    *context.out << DumpJson({{"old_name", options.old_name},
                              {"new_name", options.new_name},
                              {"renamed", renamed}})
                 << "\n";
  } else {
    *context.out << "Renamed " << VariablesText(renamed) << ": "
                 << options.old_name << " -> " << options.new_name << "\n";
  }
  return absl::OkStatus();
}

}  // namespace varscope::cli
