#include "server/service/access.h"

#include <openssl/sha.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "common/transport.h"
#include "server/base/log.h"

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

absl::StatusOr<std::unique_ptr<AccessControl>> AccessControl::Load(
    const std::string& path) {
  auto access = std::make_unique<AccessControl>();
  access->path_ = path;
  VS_RETURN_IF_ERROR(access->Reload());
  return access;
}

absl::Status AccessControl::Reload() {
  if (path_.empty()) return absl::OkStatus();
  absl::StatusOr<AccessList> loaded = AccessList::Load(path_);
  if (!loaded.ok()) return loaded.status();
  auto list = std::make_shared<const AccessList>(*std::move(loaded));
  absl::MutexLock lock(&mu_);
  list_ = std::move(list);
  return absl::OkStatus();
}

std::shared_ptr<const AccessList> AccessControl::list() const {
  absl::MutexLock lock(&mu_);
  return list_;
}

absl::StatusOr<Grant> AccessControl::Caller(
    std::optional<absl::string_view> authorization,
    const grpc::AuthContext* auth) const {
  const std::shared_ptr<const AccessList> grants = list();
  if (authorization.has_value()) {
    absl::string_view token = *authorization;
    std::optional<Grant> grant;
    if (absl::ConsumePrefix(&token, "Bearer ")) grant = grants->ForToken(token);
    if (!grant.has_value()) {
      return absl::UnauthenticatedError(
          "The token is not one this server accepts");
    }
    return *grant;
  }
  std::vector<std::string> names;
  if (auth != nullptr) {
    for (const char* property :
         {"x509_common_name", "x509_subject_alternative_name"}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        names.emplace_back(value.data(), value.size());
      }
    }
  }
  if (names.empty()) {
    return absl::UnauthenticatedError(
        "This server needs a token: send 'authorization: Bearer <token>' "
        "(varscope --token-file, $VARSCOPE_TOKEN, vs.connect(token=...))");
  }
  std::optional<Grant> grant = grants->ForCertificate(names);
  if (!grant.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "The client certificate ", names.front(), " is not in the token file"));
  }
  return *grant;
}

absl::StatusOr<Grant> AccessControl::CallerOf(
    const grpc::ServerContextBase& context) const {
  const auto& metadata = context.client_metadata();
  auto header = metadata.find("authorization");
  std::optional<absl::string_view> authorization;
  if (header != metadata.end()) {
    authorization =
        absl::string_view(header->second.data(), header->second.size());
  }
  return Caller(authorization, context.auth_context().get());
}

std::string AccessControl::Scope(const grpc::ServerContextBase& context) const {
  if (!enabled()) return "";
  absl::StatusOr<Grant> grant = CallerOf(context);
  return grant.ok() ? grant->scope : "";
}

absl::Status AccessControl::Authorize(const grpc::ServerContextBase& context,
                                      absl::string_view method, Role needed,
                                      absl::Span<const absl::string_view> names,
                                      absl::string_view target) const {
  if (!enabled()) return absl::OkStatus();
  absl::StatusOr<Grant> grant = CallerOf(context);
  const std::string identity = grant.ok() ? grant->identity : "";
  const std::string name =
      std::string(!target.empty() || names.empty() ? target : names.front());
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
  if (!grant.ok()) return audit(log::Level::kWarning, "denied", grant.status());
  // "Token abcd1234 ..."
  const std::string who = absl::StrCat(
      absl::AsciiStrToUpper(identity.substr(0, 1)), identity.substr(1));
  if (grant->role < needed) {
    return audit(log::Level::kWarning, "denied",
                 absl::PermissionDeniedError(absl::StrCat(
                     who, " has role ", RoleName(grant->role), "; ", method,
                     " needs role ", RoleName(needed))));
  }
  const std::string& scope = grant->scope;
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
    return audit(log::Level::kInfo, "admin_call", absl::OkStatus());
  }
  return absl::OkStatus();
}

}  // namespace varscope::server
