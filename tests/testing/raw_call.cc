#include "tests/testing/raw_call.h"

#include <grpc/grpc.h>

#include "gtest/gtest.h"

namespace varscope::testing {

std::string Join(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

std::shared_ptr<grpc::Channel> RawChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

RawCall::RawCall(const std::shared_ptr<grpc::Channel>& channel,
                 const std::string& method, const std::string& request) {
  grpc::GenericStub stub(channel);
  call_ = stub.PrepareCall(&context_, method, &queue_);
  call_->StartCall(this);
  if (!Await(this)) return;  // Finish gives the reason
  grpc::Slice slice(request);
  call_->WriteLast(grpc::ByteBuffer(&slice, 1), grpc::WriteOptions(), this);
  Await(this);  // fails if the server already ended the call
}

RawCall::~RawCall() {
  if (finished_) return;
  context_.TryCancel();
  Finish();
}

grpc::Status RawCall::Finish(std::vector<std::string>* replies) {
  grpc::ByteBuffer reply;
  for (;;) {
    call_->Read(&reply, this);
    if (!Await(this)) break;
    if (replies != nullptr) replies->push_back(Join(reply));
  }
  grpc::Status status;
  call_->Finish(&status, this);
  Await(this);
  finished_ = true;
  queue_.Shutdown();
  void* tag;
  bool ok;
  while (queue_.Next(&tag, &ok)) {
  }
  return status;
}

bool RawCall::Await(void* tag) {
  void* got = nullptr;
  bool ok = false;
  EXPECT_TRUE(queue_.Next(&got, &ok));
  EXPECT_EQ(got, tag);
  return ok;
}

grpc::Status CallRaw(const std::string& address, const std::string& method,
                     const std::string& request,
                     std::vector<std::string>* replies) {
  RawCall call(RawChannel(address), method, request);
  return call.Finish(replies);
}

}  // namespace varscope::testing
