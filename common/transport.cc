#include "common/transport.h"

#include <grpc/grpc.h>

namespace varscope {

std::vector<std::pair<std::string, int>> LargeMessageTransportArgs() {
  return {{GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20},
          {GRPC_ARG_HTTP2_BDP_PROBE, 0},
          {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (16 << 20) - 1}};
}

}  // namespace varscope
