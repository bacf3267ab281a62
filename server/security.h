// TLS and bearer tokens for varscoped's port.
#ifndef VARSCOPE_SERVER_SECURITY_H_
#define VARSCOPE_SERVER_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace varscope::server {

struct ServerSecurity {
  // PEM files of the server's certificate chain and private key: serve TLS.
  // Default: "" (plaintext).
  std::string tls_cert_file;
  std::string tls_key_file;
  // A file of accepted tokens, one per line (blank lines and lines starting
  // with '#' skipped). Every call except grpc.health.v1 health checks must
  // then carry `authorization: Bearer <token>` with one of them, else it
  // fails with UNAUTHENTICATED. Needs TLS. Default: "" (no tokens).
  std::string auth_token_file;
};

// The credentials of the listening port. INVALID_ARGUMENT for a certificate
// without a key (or the reverse), tokens without TLS, or a token file with no
// token; NOT_FOUND for a file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const ServerSecurity& security);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SECURITY_H_
