// TLS, client certificates and bearer tokens for varscoped's port.
#ifndef VARSCOPE_SERVER_SERVICE_SECURITY_H_
#define VARSCOPE_SERVER_SERVICE_SECURITY_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/service/access.h"

namespace varscope::server {

struct ServerSecurity {
  // PEM files of the server's certificate chain and private key: serve TLS.
  // Default: "" (plaintext).
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA certificate(s): every client must present a certificate signed by
  // one of them (mutual TLS). Needs TLS. Default: "" (no client
  // certificates asked for).
  std::string tls_client_ca_file;
  // The token file (access.h): every call except grpc.health.v1 health
  // checks must then carry `authorization: Bearer <token>` with one of its
  // tokens, or a client certificate it names, else it fails with
  // UNAUTHENTICATED; what the caller may do is its grant's role and scope.
  // Needs TLS. Default: "" (every caller may do everything).
  std::string auth_token_file;
};

// The TLS files varscoped serves with, staged as copies in a private
// directory (under /dev/shm where it exists, so key copies stay in memory)
// that gRPC watches: Reload stages the configured files again, and new
// handshakes use them within a second; connections already open keep theirs.
// Thread-safe.
class ServingCertificates {
 public:
  // Stages the files of `security` (which must name a certificate and key).
  // NOT_FOUND for a file that cannot be read, INVALID_ARGUMENT for one that
  // is not PEM or a key that does not belong to the certificate, INTERNAL if
  // the private directory cannot be written.
  static absl::StatusOr<std::unique_ptr<ServingCertificates>> Stage(
      const ServerSecurity& security);
  ServingCertificates(const ServingCertificates&) = delete;
  ServingCertificates& operator=(const ServingCertificates&) = delete;
  // Removes the private directory.
  ~ServingCertificates();

  // Rereads the configured files; on an error (as Stage's) the staged ones
  // stay in force.
  absl::Status Reload();

  // What gRPC watches.
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider()
      const {
    return provider_;
  }

 private:
  ServingCertificates(ServerSecurity security, std::string directory)
      : security_(std::move(security)), directory_(std::move(directory)) {}

  const ServerSecurity security_;
  const std::string directory_;
  absl::Mutex mu_;
  // Generation directories are named by this counter; `current` links the
  // newest.
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
};

// What the listening port serves with.
struct PortSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // The staged TLS files; null for plaintext.
  std::unique_ptr<ServingCertificates> certificates;
};

// The credentials of the listening port; with a token file, `access`
// decides which calls may go on (Varscope's services then check each call
// themselves with access->Authorize; other services but health checks need
// a valid token or certificate). INVALID_ARGUMENT for a certificate without
// a key (or the reverse), tokens or client CAs without TLS; otherwise the
// errors of ServingCertificates::Stage.
absl::StatusOr<PortSecurity> ServerCredentials(
    const ServerSecurity& security,
    std::shared_ptr<const AccessControl> access);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_SECURITY_H_
