// gRPC channel settings shared by varscoped and its clients.
#ifndef VARSCOPE_COMMON_TRANSPORT_H_
#define VARSCOPE_COMMON_TRANSPORT_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace varscope {

// HTTP/2 settings for moving large tensors, as (channel argument, value):
// a fixed stream window of 64 MiB instead of a 64 KiB one grown by
// bandwidth probes, and the largest frames HTTP/2 allows (16 MiB) instead
// of 16 KiB ones. Both ends set them: each announces the window and frame
// size it receives with.
std::vector<std::pair<std::string, int>> LargeMessageTransportArgs();

// How a client secures its channels. Default: plaintext, no token.
struct ClientSecurity {
  // PEM certificates of the CA(s) that signed the servers' certificates:
  // connect with TLS. Default: "" (plaintext).
  std::string tls_root_certs;
  // PEM certificate chain and private key presented to servers that ask for
  // client certificates (mutual TLS), with tls_root_certs. Default: "" (none).
  std::string tls_cert_chain;
  std::string tls_private_key;
  // Sent with every call as `authorization: Bearer <token>`, over TLS only
  // (gRPC never sends call credentials in plaintext). Default: "".
  std::string auth_token;
};

// The content of `path`, a certificate, key or token file described by
// `what` ("TLS CA", ...). NOT_FOUND naming both if it cannot be read.
absl::StatusOr<std::string> ReadCredentialFile(const std::string& path,
                                               absl::string_view what);

// The channel credentials `security` asks for.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(
    const ClientSecurity& security);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_TRANSPORT_H_
