// TLS, client certificates and bearer tokens for varscoped's port.
#ifndef VARSCOPE_SERVER_SECURITY_H_
#define VARSCOPE_SERVER_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/access.h"

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

class TokenChecker;

// The credentials of the listening port, and the token file behind them.
class PortSecurity {
 public:
  // INVALID_ARGUMENT for a certificate without a key (or the reverse),
  // tokens or client CAs without TLS, or a bad token file (AccessList::Parse);
  // NOT_FOUND for a file that cannot be read.
  static absl::StatusOr<std::unique_ptr<PortSecurity>> Create(
      const ServerSecurity& security);

  std::shared_ptr<grpc::ServerCredentials> credentials() const {
    return credentials_;
  }

  // Rereads the token file: calls that start from now on use it, calls in
  // flight finish as they started. On an error (as Create's) the old file
  // stays in force. OK without a token file. Thread-safe.
  absl::Status Reload();

 private:
  PortSecurity() = default;

  ServerSecurity security_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::shared_ptr<TokenChecker> checker_;  // null without a token file
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SECURITY_H_
