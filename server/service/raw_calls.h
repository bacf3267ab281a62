// Requests and replies of the service methods, which all take and give raw
// bytes (grpc::ByteBuffer): requests parse into messages the handler owns,
// so their tensors move on without a copy, and a request that does not parse
// gets a clear INVALID_ARGUMENT (gRPC's generated handlers answer
// UNIMPLEMENTED with no message); read replies carry the table's published
// buffers as gRPC slices, so a variable's bytes go to the socket without
// being copied into a message first, while a ReplyBudget bounds what
// replies not yet sent hold.
#ifndef VARSCOPE_SERVER_SERVICE_RAW_CALLS_H_
#define VARSCOPE_SERVER_SERVICE_RAW_CALLS_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "server/table/variable_table.h"

namespace varscope::server {

// `Base` with the generated method mixins `Methods` applied, the first
// outermost.
template <typename Base, template <typename> class... Methods>
struct WithMethods {
  using type = Base;
};
template <typename Base, template <typename> class Method,
          template <typename> class... Methods>
struct WithMethods<Base, Method, Methods...> {
  using type = Method<typename WithMethods<Base, Methods...>::type>;
};

// Parses `buffer` into `request`. INVALID_ARGUMENT if it does not parse
// (`The request does not parse as varscope.v1.ReadRequest`), or if an enum
// field holds a number its enum does not define (proto3 keeps them):
// `Unknown scatter mode 9 in field updates[0].scatter.mode`.
absl::Status ParseRaw(const grpc::ByteBuffer& buffer,
                      google::protobuf::Message* request);

// The bytes that replies hold until gRPC has sent them, bounded: a client
// that does not read its replies keeps their buffers alive, including
// published values the table has since replaced. A buffer counts once
// however many replies hold it, so readers of one value share its bytes.
// Thread-safe; holds may outlive the budget.
class ReplyBudget {
 public:
  // What one reply holds; releases it when the last copy is destroyed.
  class Hold;

  // REQUIRES: max_bytes > 0.
  explicit ReplyBudget(int64_t max_bytes);

  // Holds `buffers` for a reply. With `refusable`, RESOURCE_EXHAUSTED
  // (holding nothing) when replies already hold bytes and the buffers not
  // held yet would take them over the limit; one reply alone may exceed it,
  // so any value can be read. Without, always holds (for the reply of a
  // change already made, which must not be lost).
  absl::StatusOr<std::shared_ptr<const Hold>> Reserve(
      const std::vector<std::shared_ptr<const std::string>>& buffers,
      bool refusable);

  // The bytes replies hold now.
  int64_t held_bytes() const;

 private:
  struct State;
  const std::shared_ptr<State> state_;
};

// `message`, serialized.
grpc::ByteBuffer SerializeRaw(const google::protobuf::MessageLite& message);

// `message`, serialized. A message of 16 KiB or more is held in `budget`
// (see ReplyBudget::Reserve for `refusable`).
absl::StatusOr<grpc::ByteBuffer> MessageRaw(
    const google::protobuf::Message& message, ReplyBudget& budget,
    bool refusable);

// A v1::ReadResponse with `value`, its bytes shared, not copied, and held in
// `budget`. RESOURCE_EXHAUSTED as ReplyBudget::Reserve.
absl::StatusOr<grpc::ByteBuffer> ReadResponseRaw(
    const VariableTable::SharedValue& value, ReplyBudget& budget);

// A v1::UpdateResponse with `value`, its bytes shared, not copied, and held
// in `budget`, which never refuses it (the change is made).
absl::StatusOr<grpc::ByteBuffer> UpdateResponseRaw(
    const VariableTable::SharedValue& value, ReplyBudget& budget);

// A v1::BatchReadResponse with one entry per (name, value), in order, the
// bytes shared, not copied, and held in `budget`. RESOURCE_EXHAUSTED as
// ReplyBudget::Reserve.
absl::StatusOr<grpc::ByteBuffer> BatchReadResponseRaw(
    const std::vector<std::pair<std::string, VariableTable::SharedValue>>&
        values,
    ReplyBudget& budget);

// A v1::TensorChunk with `header` (unless null) and the `size` bytes of
// `value` from `offset`, shared, not copied.
// REQUIRES: `hold` holds value.bytes; offset + size <= value.bytes->size().
grpc::ByteBuffer TensorChunkRaw(
    const v1::StreamHeader* header, const VariableTable::SharedValue& value,
    size_t offset, size_t size,
    const std::shared_ptr<const ReplyBudget::Hold>& hold);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_RAW_CALLS_H_
