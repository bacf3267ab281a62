#include "server/service/security.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/transport.h"

namespace varscope::server {

namespace {

// Lets calls to Varscope's services (which check them themselves, see
// AccessControl::Authorize, so refusals are logged with the peer) and
// health checks through; other calls need a valid token or certificate.
class TokenChecker final : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenChecker(std::shared_ptr<const AccessControl> access)
      : access_(std::move(access)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata,
                       grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    auto path_entry = metadata.find(":path");
    const absl::string_view path =
        path_entry == metadata.end()
            ? absl::string_view()
            : absl::string_view(path_entry->second.data(),
                                path_entry->second.size());
    if (absl::StartsWith(path, "/grpc.health.v1.Health/") ||
        absl::StartsWith(path, "/varscope.v1.")) {
      return grpc::Status::OK;
    }
    auto header = metadata.find("authorization");
    std::optional<absl::string_view> authorization;
    if (header != metadata.end()) {
      authorization =
          absl::string_view(header->second.data(), header->second.size());
    }
    absl::StatusOr<Grant> grant = access_->Caller(authorization, context);
    if (!grant.ok()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          std::string(grant.status().message()));
    }
    return grpc::Status::OK;
  }

 private:
  const std::shared_ptr<const AccessControl> access_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerSecurity& security,
    std::shared_ptr<const AccessControl> access) {
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
    return grpc::InsecureServerCredentials();
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
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::SslServerCredentials(tls);
  if (access->enabled()) {
    credentials->SetAuthMetadataProcessor(
        std::make_shared<TokenChecker>(std::move(access)));
  }
  return credentials;
}

}  // namespace varscope::server
