#include "common/transport.h"

#include <grpc/grpc.h>
#include <grpcpp/security/credentials.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace varscope {

// gRPC 1.51 keeps the connection's window, without bandwidth probes, at
// 64 KiB plus 1 MiB per stream reading a message: a 4 MiB message goes in
// four pieces, each sent after the receiver's window update. The probes
// widen that window but cost more CPU per call than the updates they save,
// and TCP read-chunk sizes, the HTTP/2 write buffer and 1.51's transport
// experiments win nothing measurable (bench/RESULTS.md, issue 15).
std::vector<std::pair<std::string, int>> LargeMessageTransportArgs() {
  return {{GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20},
          {GRPC_ARG_HTTP2_BDP_PROBE, 0},
          {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (16 << 20) - 1}};
}

absl::StatusOr<std::string> ReadCredentialFile(const std::string& path,
                                               absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("Cannot read the ", what, " file ", path));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(
    const ClientSecurity& security) {
  if (security.tls_root_certs.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = security.tls_root_certs;
  tls.pem_cert_chain = security.tls_cert_chain;
  tls.pem_private_key = security.tls_private_key;
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::SslCredentials(tls);
  if (security.auth_token.empty()) return credentials;
  return grpc::CompositeChannelCredentials(
      credentials, grpc::AccessTokenCredentials(security.auth_token));
}

}  // namespace varscope
