// End-to-end: clients that never read their replies hold the server's
// memory only up to --max-pending-reply-bytes; past it, reads fail with
// RESOURCE_EXHAUSTED until those clients go away.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_call.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::varscope::testing::PollUntil;
using ::varscope::testing::RawCall;
using ::varscope::testing::RawChannel;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

constexpr int64_t kMiB = 1 << 20;
constexpr int64_t kFloats = kMiB / 4;  // the variables hold 1 MiB each

// Waits until the server's replies hold `bytes`: the stalled replies are
// admitted, or gone.
void AwaitPendingReplyBytes(TestServer& server, int64_t bytes) {
  ASSERT_TRUE(PollUntil([&] {
    return server.ServiceForTest().PendingReplyBytesForTest() == bytes;
  })) << server.ServiceForTest().PendingReplyBytesForTest()
      << " bytes, not " << bytes;
}

class ReplyBudgetTest : public ::testing::TestWithParam<const char*> {
 protected:
  static server::ServerOptions Options() {
    server::ServerOptions options;
    options.max_pending_reply_bytes = 3 * kMiB;
    return options;
  }

  void SetUp() override {
    VariableScope scope;
    GetVariableOptions get;
    get.shape = std::vector<int64_t>{kFloats};
    for (const char* name : {"a", "b"}) {
      VS_ASSERT_OK(GetVariable(client_, scope, name, get).status());
    }
  }

  // Starts a call of the method under test reading `name` that never reads
  // its reply.
  std::unique_ptr<RawCall> StalledRead(const std::string& name) {
    v1::ReadRequest request;
    request.set_name(name);
    return std::make_unique<RawCall>(
        channel_, absl::StrCat("/varscope.v1.VariableService/", GetParam()),
        request.SerializeAsString());
  }

  // A new value of `a`, in a new buffer.
  void ChangeA() {
    VS_ASSERT_OK(
        client_->AssignAdd("a", Tensor(v1::DT_FLOAT, {kFloats})).status());
  }

  TestServer server_{Options()};
  std::shared_ptr<Client> client_ = server_.NewClient();
  std::shared_ptr<grpc::Channel> channel_ = RawChannel(server_.address());
};

TEST_P(ReplyBudgetTest, StalledReadersHoldUpToTheLimitThenReadsAreRefused) {
  // Three stalled readers of three values of `a`: each pins its buffer.
  std::vector<std::unique_ptr<RawCall>> stalled;
  for (int i = 1; i <= 3; ++i) {
    if (i > 1) ChangeA();
    stalled.push_back(StalledRead("a"));
    AwaitPendingReplyBytes(server_, i * kMiB);
  }
  // Readers of a value already held share its bytes.
  VS_EXPECT_OK(client_->Read("a").status());

  const std::string refused =
      "Replies not yet received by their clients hold 3145728 bytes; this one "
      "would add 1048576, over this server's limit of 3145728 "
      "(--max-pending-reply-bytes). Try again once slow readers catch up";
  ChangeA();
  EXPECT_THAT(client_->Read("a"),
              StatusIs(absl::StatusCode::kResourceExhausted, refused));
  EXPECT_THAT(client_->Read("b"),
              StatusIs(absl::StatusCode::kResourceExhausted, refused));
  v1::BatchReadRequest batch;
  batch.add_names("b");
  EXPECT_THAT(client_->BatchRead(batch),
              StatusIs(absl::StatusCode::kResourceExhausted, refused));
  // Small replies and changes go on.
  VS_EXPECT_OK(client_->Stat("b").status());
  ChangeA();

  stalled.clear();  // their calls are cancelled
  AwaitPendingReplyBytes(server_, 0);
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("a"));
  EXPECT_EQ(read.version, 5);
  VS_EXPECT_OK(client_->BatchRead(batch).status());
}

INSTANTIATE_TEST_SUITE_P(UnaryAndStream, ReplyBudgetTest,
                         ::testing::Values("Read", "ReadStream"));

}  // namespace
}  // namespace varscope
