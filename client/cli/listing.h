// Paginated walks over a server's names, and resolving a name to a
// variable (plain or partitioned).
#ifndef VARSCOPE_CLIENT_CLI_LISTING_H_
#define VARSCOPE_CLIENT_CLI_LISTING_H_

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "client/variable.h"

namespace varscope::cli {

using ListEntry = v1::ListVariablesResponse::Entry;

// Client::ForEachPage of ListVariables(scope, recursive) in pages of
// `page_size` (0: the server's).
absl::Status ForEachPage(
    Client& client, absl::string_view scope, bool recursive, int32_t page_size,
    absl::FunctionRef<absl::Status(const v1::ListVariablesResponse&)> fn);

// Calls `fn` on every variable under `scope`, in name order, one page at a
// time; when nothing is under it, on the variable named `scope` itself (so a
// variable's name works as a scope of one). NOT_FOUND, with the server's
// similar names, if neither exists; the root "" may be empty.
absl::Status ForEachVariable(
    Client& client, absl::string_view scope, int32_t page_size,
    absl::FunctionRef<absl::Status(const v1::VariableInfo&)> fn);

// A handle on the stored variable `info` describes (not partitioned).
Variable VariableFromInfo(const std::shared_ptr<Client>& client,
                          v1::VariableInfo info);

// The variable `name`: a stored variable (possibly a part), or a partitioned
// variable whose parts are `name/part_i`. NOT_FOUND (the server's message,
// with similar names) if neither exists; other errors as Client.
absl::StatusOr<Variable> ResolveVariable(const std::shared_ptr<Client>& client,
                                         absl::string_view name);

// The metadata of `variable` as a whole. For a partitioned variable: its
// name, dtype, full shape, trainable, initializer and creation time, with
// the parts' total bytes and their highest version and update time.
v1::VariableInfo WholeInfo(const Variable& variable);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_LISTING_H_
