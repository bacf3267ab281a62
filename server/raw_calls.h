// Requests and replies of the VariableService methods that take and give
// raw bytes (grpc::ByteBuffer): requests parse into messages the handler
// owns, so their tensors move on without a copy; read replies carry the
// table's published buffers as gRPC slices, so a variable's bytes go to the
// socket without being copied into a message first.
#ifndef VARSCOPE_SERVER_RAW_CALLS_H_
#define VARSCOPE_SERVER_RAW_CALLS_H_

#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"
#include "server/variable_table.h"

namespace varscope::server {

// Parses `buffer` into `message`. INVALID_ARGUMENT if it does not parse.
absl::Status ParseRaw(const grpc::ByteBuffer& buffer,
                      google::protobuf::MessageLite* message);

// `message`, serialized.
grpc::ByteBuffer SerializeRaw(const google::protobuf::MessageLite& message);

// A v1::ReadResponse with `value`, its bytes shared, not copied.
grpc::ByteBuffer ReadResponseRaw(const VariableTable::SharedValue& value);

// A v1::BatchReadResponse with one entry per (name, value), in order, the
// bytes shared, not copied.
grpc::ByteBuffer BatchReadResponseRaw(
    const std::vector<std::pair<std::string, VariableTable::SharedValue>>&
        values);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_RAW_CALLS_H_
