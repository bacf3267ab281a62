// Test-only gRPC calls of any method with any request bytes, through
// grpc::GenericStub: garbage requests, and readers that never read.
#ifndef VARSCOPE_TESTS_TESTING_RAW_CALL_H_
#define VARSCOPE_TESTS_TESTING_RAW_CALL_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

namespace varscope::testing {

// The bytes of `buffer`, joined.
std::string Join(const grpc::ByteBuffer& buffer);

// A plaintext channel to `address` on a connection of its own, whose
// HTTP/2 stream windows grow only as the application reads (no bandwidth
// probes): a call that is never read stalls its sender after 64 KiB.
std::shared_ptr<grpc::Channel> RawChannel(const std::string& address);

// One call of `method` ("/package.Service/Method", of any kind: unary or
// streaming), started at construction with `request` as its only message
// and the client's half closed. Not thread-safe.
class RawCall {
 public:
  RawCall(const std::shared_ptr<grpc::Channel>& channel,
          const std::string& method, const std::string& request);
  // Cancels the call if Finish was not called.
  ~RawCall();
  RawCall(const RawCall&) = delete;
  RawCall& operator=(const RawCall&) = delete;

  // Reads every reply message (appended to `replies` if given), then
  // returns the call's status. Waits as long as the server takes.
  grpc::Status Finish(std::vector<std::string>* replies = nullptr);

 private:
  // Waits for the operation `tag`; returns its ok.
  bool Await(void* tag);

  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool finished_ = false;
};

// `request` as the only message of a call of `method` at `address`, and
// the call's status (see RawCall).
grpc::Status CallRaw(const std::string& address, const std::string& method,
                     const std::string& request,
                     std::vector<std::string>* replies = nullptr);

}  // namespace varscope::testing

#endif  // VARSCOPE_TESTS_TESTING_RAW_CALL_H_
