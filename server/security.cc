#include "server/security.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/transport.h"

namespace varscope::server {
namespace {

// True if a and b are equal, in time that depends only on their lengths.
bool SameToken(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

// Lets a call through if it carries one of the tokens, or is a health check.
class TokenChecker final : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenChecker(std::vector<std::string> tokens)
      : tokens_(std::move(tokens)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext*,
                       OutputMetadata* consumed, OutputMetadata*) override {
    auto path = metadata.find(":path");
    if (path != metadata.end() &&
        absl::StartsWith(
            absl::string_view(path->second.data(), path->second.size()),
            "/grpc.health.v1.Health/")) {
      return grpc::Status::OK;
    }
    auto header = metadata.find("authorization");
    if (header == metadata.end()) {
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          "This server needs a token: send 'authorization: Bearer <token>' "
          "(varscope --token-file, $VARSCOPE_TOKEN, vs.connect(token=...))");
    }
    absl::string_view token(header->second.data(), header->second.size());
    bool accepted = false;
    if (absl::ConsumePrefix(&token, "Bearer ")) {
      for (const std::string& t : tokens_) accepted |= SameToken(token, t);
    }
    if (!accepted) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "The token is not one this server accepts");
    }
    consumed->emplace(
        std::string(header->first.data(), header->first.size()),
        std::string(header->second.data(), header->second.size()));
    return grpc::Status::OK;
  }

 private:
  const std::vector<std::string> tokens_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerSecurity& security) {
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
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::SslServerCredentials(tls);
  if (security.auth_token_file.empty()) return credentials;
  absl::StatusOr<std::string> file =
      ReadCredentialFile(security.auth_token_file, "token");
  if (!file.ok()) return file.status();
  std::vector<std::string> tokens;
  for (absl::string_view line : absl::StrSplit(*file, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && line[0] != '#') tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "The token file ", security.auth_token_file, " has no token"));
  }
  credentials->SetAuthMetadataProcessor(
      std::make_shared<TokenChecker>(std::move(tokens)));
  return credentials;
}

}  // namespace varscope::server
