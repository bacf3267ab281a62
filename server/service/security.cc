#include "server/service/security.h"

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"
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

constexpr char kKeyFile[] = "key.pem";
constexpr char kCertFile[] = "cert.pem";
constexpr char kCaFile[] = "ca.pem";

struct StagedFiles {
  std::string key;
  std::string cert;
  std::string ca;
};

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::unique_ptr<X509, X509Deleter> FirstCertificate(const std::string& pem) {
  return std::unique_ptr<X509, X509Deleter>(
      PEM_read_bio_X509(Bio(pem).get(), nullptr, nullptr, nullptr));
}

// The files `security` names, checked as a TLS handshake would use them.
absl::StatusOr<StagedFiles> ReadServingFiles(const ServerSecurity& security) {
  StagedFiles files;
  absl::StatusOr<std::string> cert =
      ReadCredentialFile(security.tls_cert_file, "TLS certificate");
  if (!cert.ok()) return cert.status();
  files.cert = *std::move(cert);
  absl::StatusOr<std::string> key =
      ReadCredentialFile(security.tls_key_file, "TLS key");
  if (!key.ok()) return key.status();
  files.key = *std::move(key);
  if (!security.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadCredentialFile(security.tls_client_ca_file, "TLS client CA");
    if (!ca.ok()) return ca.status();
    files.ca = *std::move(ca);
    if (FirstCertificate(files.ca) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("The TLS client CA file ", security.tls_client_ca_file,
                       " holds no PEM certificate"));
    }
  }
  const std::unique_ptr<X509, X509Deleter> leaf = FirstCertificate(files.cert);
  if (leaf == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("The TLS certificate file ", security.tls_cert_file,
                     " holds no PEM certificate"));
  }
  const std::unique_ptr<EVP_PKEY, KeyDeleter> private_key(
      PEM_read_bio_PrivateKey(Bio(files.key).get(), nullptr, nullptr, nullptr));
  if (private_key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("The TLS key file ", security.tls_key_file,
                     " holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(leaf.get(), private_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "The TLS key ", security.tls_key_file,
        " does not belong to the certificate ", security.tls_cert_file));
  }
  return files;
}

}  // namespace

absl::StatusOr<PortSecurity> ServerCredentials(
    const ServerSecurity& security,
    std::shared_ptr<const AccessControl> access) {
  if (security.tls_cert_file.empty() != security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate and a key file");
  }
  PortSecurity port;
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
    port.credentials = grpc::InsecureServerCredentials();
    return port;
  }
  absl::StatusOr<std::unique_ptr<ServingCertificates>> certificates =
      ServingCertificates::Stage(security);
  if (!certificates.ok()) return certificates.status();
  port.certificates = *std::move(certificates);
  grpc::experimental::TlsServerCredentialsOptions tls(
      port.certificates->provider());
  tls.watch_identity_key_cert_pairs();
  if (security.tls_client_ca_file.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  port.credentials = grpc::experimental::TlsServerCredentials(tls);
  if (access->enabled()) {
    port.credentials->SetAuthMetadataProcessor(
        std::make_shared<TokenChecker>(std::move(access)));
  }
  return port;
}

absl::StatusOr<std::unique_ptr<ServingCertificates>> ServingCertificates::Stage(
    const ServerSecurity& security) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::path parent = fs::is_directory("/dev/shm", error)
                              ? fs::path("/dev/shm")
                              : fs::temp_directory_path(error);
  std::string pattern = (parent / "varscoped-tls-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("Cannot create a directory for the "
                     "TLS files in ",
                     parent.string(), ": ", std::strerror(errno)));
  }
  std::unique_ptr<ServingCertificates> certificates(
      new ServingCertificates(security, pattern));
  VS_RETURN_IF_ERROR(certificates->Reload());
  const fs::path current = fs::path(pattern) / "current";
  certificates->provider_ =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          (current / kKeyFile).string(), (current / kCertFile).string(),
          security.tls_client_ca_file.empty() ? std::string()
                                              : (current / kCaFile).string(),
          /*refresh_interval_sec=*/1);
  return certificates;
}

ServingCertificates::~ServingCertificates() {
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

absl::Status ServingCertificates::Reload() {
  namespace fs = std::filesystem;
  absl::StatusOr<StagedFiles> files = ReadServingFiles(security_);
  if (!files.ok()) return files.status();
  absl::MutexLock lock(&mu_);
  const fs::path directory(directory_);
  const fs::path generation = directory / absl::StrCat(generation_ + 1);
  std::error_code error;
  fs::create_directory(generation, error);
  for (const auto& [name, content] :
       {std::pair<const char*, const std::string*>{kKeyFile, &files->key},
        {kCertFile, &files->cert},
        {kCaFile, &files->ca}}) {
    if (error) break;
    std::ofstream out(generation / name, std::ios::binary | std::ios::trunc);
    out << *content;
    out.close();
    if (!out) error = std::make_error_code(std::errc::io_error);
  }
  // The link moves in one rename, so gRPC reads one generation's files.
  const fs::path link = directory / "current.new";
  if (!error) fs::create_symlink(generation.filename(), link, error);
  if (!error) fs::rename(link, directory / "current", error);
  if (error) {
    fs::remove_all(generation, error);
    return absl::InternalError(absl::StrCat("Cannot stage the TLS files in ",
                                            directory_, ": ", error.message()));
  }
  ++generation_;
  // gRPC may still be reading the previous generation, never the one before.
  fs::remove_all(directory / absl::StrCat(generation_ - 2), error);
  return absl::OkStatus();
}

}  // namespace varscope::server
