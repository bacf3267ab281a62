// The one mapping between absl::Status and grpc::Status. The codes are the
// same canonical codes; messages are carried unchanged.
#ifndef VARSCOPE_COMMON_GRPC_STATUS_H_
#define VARSCOPE_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace varscope {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_GRPC_STATUS_H_
