// TLS, client certificates and bearer tokens for varscoped's port.
#ifndef VARSCOPE_SERVER_SERVICE_SECURITY_H_
#define VARSCOPE_SERVER_SERVICE_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

// The credentials of the listening port; with a token file, `access`
// decides which calls may go on (Varscope's services then check each call
// themselves with access->Authorize; other services but health checks need
// a valid token or certificate). INVALID_ARGUMENT for a certificate without
// a key (or the reverse), tokens or client CAs without TLS; NOT_FOUND for a
// file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerSecurity& security,
    std::shared_ptr<const AccessControl> access);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_SECURITY_H_
