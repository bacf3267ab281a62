#include "server/security.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/transport.h"

namespace varscope::server {

// Records each call's caller (its token's or certificate's grant) in the
// call's AuthContext for Authorize; refuses calls without one outright
// except to Varscope's services, which refuse them themselves (so the
// refusal is logged with the peer), and health checks, which need none.
class TokenChecker final : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenChecker(AccessList list)
      : list_(std::make_shared<const AccessList>(std::move(list))) {}

  void Replace(AccessList list) {
    auto replacement = std::make_shared<const AccessList>(std::move(list));
    absl::MutexLock lock(&mu_);
    list_ = std::move(replacement);
  }

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata,
                       grpc::AuthContext* context, OutputMetadata* consumed,
                       OutputMetadata*) override {
    auto path_entry = metadata.find(":path");
    const absl::string_view path =
        path_entry == metadata.end()
            ? absl::string_view()
            : absl::string_view(path_entry->second.data(),
                                path_entry->second.size());
    if (absl::StartsWith(path, "/grpc.health.v1.Health/")) {
      return grpc::Status::OK;
    }
    std::shared_ptr<const AccessList> list;
    {
      absl::MutexLock lock(&mu_);
      list = list_;
    }
    std::optional<Grant> grant;
    std::string refused;
    auto header = metadata.find("authorization");
    if (header != metadata.end()) {
      absl::string_view token(header->second.data(), header->second.size());
      if (absl::ConsumePrefix(&token, "Bearer ")) grant = list->ForToken(token);
      if (!grant.has_value()) {
        refused = "The token is not one this server accepts";
      }
      consumed->emplace(
          std::string(header->first.data(), header->first.size()),
          std::string(header->second.data(), header->second.size()));
    } else {
      std::vector<std::string> names;
      for (const char* property :
           {"x509_common_name", "x509_subject_alternative_name"}) {
        for (const grpc::string_ref& value :
             context->FindPropertyValues(property)) {
          names.emplace_back(value.data(), value.size());
        }
      }
      if (!names.empty()) grant = list->ForCertificate(names);
      if (names.empty()) {
        refused =
            "This server needs a token: send 'authorization: Bearer <token>' "
            "(varscope --token-file, $VARSCOPE_TOKEN, vs.connect(token=...))";
      } else if (!grant.has_value()) {
        refused = absl::StrCat("The client certificate ", names.front(),
                               " is not in the token file");
      }
    }
    if (!grant.has_value()) {
      if (!absl::StartsWith(path, "/varscope.v1.")) {
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, refused);
      }
      context->AddProperty(std::string(kCallerRefusedProperty), refused);
      return grpc::Status::OK;
    }
    context->AddProperty(std::string(kCallerIdentityProperty), grant->identity);
    context->AddProperty(std::string(kCallerRoleProperty),
                         std::string(RoleName(grant->role)));
    context->AddProperty(std::string(kCallerScopeProperty), grant->scope);
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<const AccessList> list_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<PortSecurity>> PortSecurity::Create(
    const ServerSecurity& security) {
  std::unique_ptr<PortSecurity> port(new PortSecurity());
  port->security_ = security;
  if (security.tls_cert_file.empty() != security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate and a key file");
  }
  if (security.tls_cert_file.empty()) {
    if (!security.auth_token_file.empty()) {
      return absl::InvalidArgumentError(
          "Tokens need TLS (a certificate and a key file): gRPC clients send "
          "tokens over secure channels only");
    }
    if (!security.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "Client certificates (--tls-client-ca-file) need TLS (a "
          "certificate and a key file)");
    }
    port->credentials_ = grpc::InsecureServerCredentials();
    return port;
  }
  grpc::SslServerCredentialsOptions tls;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert =
      ReadCredentialFile(security.tls_cert_file, "TLS certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      ReadCredentialFile(security.tls_key_file, "TLS key");
  if (!key.ok()) return key.status();
  pair.cert_chain = *std::move(cert);
  pair.private_key = *std::move(key);
  tls.pem_key_cert_pairs.push_back(std::move(pair));
  if (!security.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadCredentialFile(security.tls_client_ca_file, "TLS client CA");
    if (!ca.ok()) return ca.status();
    tls.pem_root_certs = *std::move(ca);
    tls.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  port->credentials_ = grpc::SslServerCredentials(tls);
  if (security.auth_token_file.empty()) return port;
  absl::StatusOr<AccessList> list = AccessList::Load(security.auth_token_file);
  if (!list.ok()) return list.status();
  port->checker_ = std::make_shared<TokenChecker>(*std::move(list));
  port->credentials_->SetAuthMetadataProcessor(port->checker_);
  return port;
}

absl::Status PortSecurity::Reload() {
  if (checker_ == nullptr) return absl::OkStatus();
  absl::StatusOr<AccessList> list = AccessList::Load(security_.auth_token_file);
  if (!list.ok()) return list.status();
  checker_->Replace(*std::move(list));
  return absl::OkStatus();
}

}  // namespace varscope::server
