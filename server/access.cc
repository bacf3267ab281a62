#include "server/access.h"

#include <openssl/sha.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/transport.h"
#include "server/log.h"

namespace varscope::server {
namespace {

// True if a and b are equal, in time that depends only on their lengths.
bool SameToken(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

// The first 8 hex digits of the SHA-256 of `token`.
std::string TokenId(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 4));
}

std::optional<Role> ParseRole(absl::string_view text) {
  if (text == "read") return Role::kRead;
  if (text == "write") return Role::kWrite;
  if (text == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::string Property(const grpc::AuthContext& auth, absl::string_view name) {
  std::vector<grpc::string_ref> values =
      auth.FindPropertyValues(std::string(name));
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kWrite:
      return "write";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

absl::StatusOr<AccessList> AccessList::Parse(absl::string_view text,
                                             absl::string_view path) {
  AccessList list;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("The token file ", path, " line ", number, ": ", why,
                       " (expected TOKEN [read|write|admin] [scope=PREFIX] "
                       "or cert:NAME ROLE [scope=PREFIX])"));
    };
    Entry entry;
    entry.key = std::string(words[0]);
    entry.certificate = absl::ConsumePrefix(&words[0], "cert:");
    if (entry.certificate) {
      entry.key = std::string(words[0]);
      if (entry.key.empty()) return bad("cert: needs a name");
      if (words.size() < 2) return bad("a certificate needs a role");
      entry.grant.identity = absl::StrCat("certificate ", entry.key);
    } else {
      entry.grant.identity = absl::StrCat("token ", TokenId(entry.key));
    }
    if (words.size() > 3) return bad("too many words");
    if (words.size() >= 2) {
      std::optional<Role> role = ParseRole(words[1]);
      if (!role.has_value()) {
        return bad(absl::StrCat("unknown role '", words[1], "'"));
      }
      entry.grant.role = *role;
    }
    if (words.size() == 3) {
      absl::string_view scope = words[2];
      if (!absl::ConsumePrefix(&scope, "scope=") || scope.empty()) {
        return bad(absl::StrCat("'", words[2], "' is not scope=PREFIX"));
      }
      entry.grant.scope = std::string(scope);
    }
    list.entries_.push_back(std::move(entry));
  }
  if (list.entries_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("The token file ", path, " has no token"));
  }
  return list;
}

absl::StatusOr<AccessList> AccessList::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadCredentialFile(path, "token");
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

std::optional<Grant> AccessList::ForToken(absl::string_view token) const {
  std::optional<Grant> found;
  for (const Entry& entry : entries_) {
    if (!entry.certificate && SameToken(token, entry.key) && !found) {
      found = entry.grant;
    }
  }
  return found;
}

std::optional<Grant> AccessList::ForCertificate(
    absl::Span<const std::string> names) const {
  for (const std::string& name : names) {
    for (const Entry& entry : entries_) {
      if (entry.certificate && entry.key == name) return entry.grant;
    }
  }
  return std::nullopt;
}

bool VisibleInScope(absl::string_view name, bool is_scope,
                    absl::string_view scope) {
  return absl::StartsWith(name, scope) ||
         (is_scope && absl::StartsWith(scope, absl::StrCat(name, "/")));
}

std::string CallerScope(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  return auth == nullptr ? "" : Property(*auth, kCallerScopeProperty);
}

absl::Status Authorize(const grpc::ServerContextBase& context,
                       absl::string_view method, Role needed,
                       absl::Span<const absl::string_view> names,
                       absl::string_view target) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr ||
      (auth->FindPropertyValues(std::string(kCallerRoleProperty)).empty() &&
       auth->FindPropertyValues(std::string(kCallerRefusedProperty)).empty())) {
    return absl::OkStatus();  // no token file: everyone may do everything
  }
  const std::string identity = Property(*auth, kCallerIdentityProperty);
  const std::string name =
      std::string(!target.empty() || names.empty() ? target : names.front());
  // "Token abcd1234 ..."
  const std::string who = absl::StrCat(
      absl::AsciiStrToUpper(identity.substr(0, 1)), identity.substr(1));
  auto audit = [&](log::Level level, absl::string_view event,
                   const absl::Status& status) {
    log::Log(level, event,
             {{"peer", context.peer()},
              {"identity", identity},
              {"method", method},
              {"name", name},
              {"code", absl::StatusCodeToString(status.code())},
              {"message", status.message()}});
    return status;
  };
  const std::string refused = Property(*auth, kCallerRefusedProperty);
  if (!refused.empty()) {
    return audit(log::Level::kWarning, "denied",
                 absl::UnauthenticatedError(refused));
  }
  const std::string role_name = Property(*auth, kCallerRoleProperty);
  const Role role = ParseRole(role_name).value_or(Role::kRead);
  if (role < needed) {
    return audit(log::Level::kWarning, "denied",
                 absl::PermissionDeniedError(
                     absl::StrCat(who, " has role ", role_name, "; ", method,
                                  " needs role ", RoleName(needed))));
  }
  const std::string scope = Property(*auth, kCallerScopeProperty);
  for (absl::string_view n : names) {
    if (!scope.empty() && n.empty()) {
      return audit(log::Level::kWarning, "denied",
                   absl::PermissionDeniedError(
                       absl::StrCat(who, " is confined to names under ", scope,
                                    "; ", method, " covers the whole store")));
    }
    if (!absl::StartsWith(n, scope)) {
      return audit(log::Level::kWarning, "denied",
                   absl::PermissionDeniedError(absl::StrCat(
                       who, " is confined to names under ", scope, "; ", method,
                       " of '", n, "' is outside it")));
    }
  }
  if (needed == Role::kAdmin) {
    audit(log::Level::kInfo, "admin_call", absl::OkStatus());
  }
  return absl::OkStatus();
}

}  // namespace varscope::server
