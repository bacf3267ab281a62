// Who may do what: the roles of the token file (--auth-token-file) and the
// check every VariableService and AdminService method makes before it acts.
//
// Token file, one grant per line ('#' comments and blank lines skipped):
//   TOKEN                      admin (the one-column format of old files)
//   TOKEN ROLE [scope=PREFIX]  a bearer token
//   cert:NAME ROLE [scope=PREFIX]
//                              a client certificate whose subject CN or a DNS
//                              subject alternative name is NAME (mTLS)
// ROLE is read, write or admin; each includes the ones before it. With a
// scope, the grant covers only names starting with PREFIX, and listings show
// only those.
#ifndef VARSCOPE_SERVER_SERVICE_ACCESS_H_
#define VARSCOPE_SERVER_SERVICE_ACCESS_H_

#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace varscope::server {

enum class Role { kRead = 0, kWrite = 1, kAdmin = 2 };

// "read", "write", "admin".
absl::string_view RoleName(Role role);

// What one line of the token file allows its caller.
struct Grant {
  // How logs and errors name the caller: "token " and the first 8 hex digits
  // of the token's SHA-256 (never the token), or "certificate " and NAME.
  std::string identity;
  Role role = Role::kAdmin;
  // Names the grant covers start with this; "" covers every name.
  std::string scope;
};

// A parsed token file. Immutable, so thread-safe.
class AccessList {
 public:
  // Parses `text`, the content of the file `path`. INVALID_ARGUMENT naming
  // the path and line number for a malformed line, or for a file with no
  // grant.
  static absl::StatusOr<AccessList> Parse(absl::string_view text,
                                          absl::string_view path);
  // Reads and parses `path`; NOT_FOUND if it cannot be read.
  static absl::StatusOr<AccessList> Load(const std::string& path);

  // The grant of bearer token `token` (compared in time independent of its
  // content), or nullopt.
  std::optional<Grant> ForToken(absl::string_view token) const;
  // The grant of the first of `names` (a certificate's CN and DNS SANs) the
  // file lists, or nullopt.
  std::optional<Grant> ForCertificate(
      absl::Span<const std::string> names) const;

 private:
  struct Entry {
    std::string key;  // the token, or the certificate name
    bool certificate;
    Grant grant;
  };
  std::vector<Entry> entries_;
};

// Who may call what: the token file in force (none: every caller may do
// everything). Thread-safe.
class AccessControl {
 public:
  // No token file: every caller may do everything.
  AccessControl() = default;
  // The grants of the token file `path` (AccessList::Load's errors).
  static absl::StatusOr<std::unique_ptr<AccessControl>> Load(
      const std::string& path);

  // Rereads the token file: calls that start from now on use it, calls in
  // flight finish as they started. On an error (as Load's) the old file
  // stays in force. OK without a token file.
  absl::Status Reload();

  // Whether a token file is in force.
  bool enabled() const { return !path_.empty(); }

  // The grant of a caller that sent `authorization` (the header's value;
  // nullopt if absent) over a connection with `auth` (its client
  // certificate's CN and DNS SANs, if any). UNAUTHENTICATED if it has none.
  // REQUIRES: enabled().
  absl::StatusOr<Grant> Caller(std::optional<absl::string_view> authorization,
                               const grpc::AuthContext* auth) const;

  // OK if the caller of `context` may call `method`, which needs `needed`,
  // on every one of `names` ("" names the whole store, which a caller
  // confined to a scope may not touch; listings pass no names and filter
  // their answers with Scope). Otherwise UNAUTHENTICATED (no, or an
  // unknown, token or certificate) or PERMISSION_DENIED naming the role
  // needed or the scope, logged as event "denied"; allowed calls needing
  // admin are logged as event "admin_call". Both with peer, identity,
  // method and name (`target`, e.g. a directory, else the first of
  // `names`).
  absl::Status Authorize(const grpc::ServerContextBase& context,
                         absl::string_view method, Role needed,
                         absl::Span<const absl::string_view> names,
                         absl::string_view target = "") const;

  // The name prefix the caller of `context` is confined to ("" for none).
  std::string Scope(const grpc::ServerContextBase& context) const;

 private:
  absl::StatusOr<Grant> CallerOf(const grpc::ServerContextBase& context) const;
  std::shared_ptr<const AccessList> list() const;

  std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const AccessList> list_ ABSL_GUARDED_BY(mu_);
};

// Whether `name` (a variable or scope) is visible under `scope`: it lies
// under it, or (for a scope entry) it is one of its ancestors.
bool VisibleInScope(absl::string_view name, bool is_scope,
                    absl::string_view scope);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_ACCESS_H_
