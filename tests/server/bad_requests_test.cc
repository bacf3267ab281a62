// End-to-end: requests a server must refuse with a clear error and without
// changing anything: bytes that do not parse, enum values outside their
// enums, page tokens the server never issued, messages over the limit.
#include <grpcpp/grpcpp.h>

#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_call.h"
#include "tests/testing/test_server.h"
#include "varscope/v1/admin_service.grpc.pb.h"

namespace varscope {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::MethodDescriptor;
using ::google::protobuf::ServiceDescriptor;
using ::testing::EndsWith;
using ::testing::StartsWith;
using ::varscope::testing::CallRaw;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

// Every method of the services varscoped serves.
std::vector<const MethodDescriptor*> AllMethods() {
  std::vector<const MethodDescriptor*> methods;
  for (const char* name : {v1::VariableService::service_full_name(),
                           v1::AdminService::service_full_name()}) {
    const ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    for (int i = 0; i < service->method_count(); ++i) {
      methods.push_back(service->method(i));
    }
  }
  return methods;
}

std::string Path(const MethodDescriptor* method) {
  return absl::StrCat("/", method->service()->full_name(), "/", method->name());
}

absl::Status Reuse(Client& client, const std::string& name) {
  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::AUTO_REUSE);
  request.set_dtype(v1::DT_FLOAT);
  request.mutable_shape()->add_dims(2);
  request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  return client.GetVariable(request).status();
}

TEST(UndecodableRequests, EveryMethodOfBothServicesIsInvalidArgument) {
  TestServer server;
  for (const MethodDescriptor* method : AllMethods()) {
    const grpc::Status status =
        CallRaw(server.address(), Path(method), "\xff\xff\xff");
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << Path(method) << ": " << status.error_message();
    EXPECT_EQ(status.error_message(),
              absl::StrCat("The request does not parse as ",
                           method->input_type()->full_name()))
        << Path(method);
  }
}

TEST(UnknownEnums, ScatterModeOutsideTheEnumChangesNothing) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  VS_ASSERT_OK(Reuse(*client, "w"));
  for (const int mode : {9, -1}) {
    v1::BatchUpdateRequest request;
    v1::Update* update = request.add_updates();
    update->set_name("w");
    v1::Scatter* scatter = update->mutable_scatter();
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {2}, {{0, 0}}),
                  scatter->mutable_indices());
    TensorToProto(Tensor::FromVector<float>(v1::DT_FLOAT, {2}, {{1, 2}}),
                  scatter->mutable_rows());
    scatter->set_mode(static_cast<v1::Scatter::Mode>(mode));
    EXPECT_THAT(client->BatchUpdate(request),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("Unknown scatter mode ", mode,
                                      " in field updates[0].scatter.mode")));
  }
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("w"));
  EXPECT_EQ(read.version, 1);
  EXPECT_THAT(read.value.flat<float>(), ::testing::ElementsAre(0, 0));
}

TEST(UnknownEnums, GetVariableWithAnUnknownFanModeCreatesNothing) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  v1::GetVariableRequest request;
  request.set_name("x");
  request.set_mode(v1::AUTO_REUSE);
  request.set_dtype(v1::DT_FLOAT);
  request.mutable_shape()->add_dims(3);
  request.mutable_initializer()->set_kind(v1::Initializer::VARIANCE_SCALING);
  request.mutable_initializer()->set_mode(
      static_cast<v1::Initializer::FanMode>(7));
  EXPECT_THAT(client->GetVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown initializer fan mode 7 in field "
                       "initializer.mode"));
  EXPECT_THAT(client->Stat("x"), StatusIs(absl::StatusCode::kNotFound));
}

// Whether `inner` is `type` or encloses it: the type of one of `fields`
// but the last (the field of type `inner` itself).
bool Encloses(const Descriptor* type,
              const std::vector<const FieldDescriptor*>& fields,
              const Descriptor* inner) {
  if (type == inner) return true;
  for (size_t i = 0; i + 1 < fields.size(); ++i) {
    if (fields[i]->message_type() == inner) return true;
  }
  return false;
}

// Calls `visit(path, fields)` for every enum field reachable from `type`
// through singular and repeated message fields, with the fields leading to
// it; `path` names it as the server's messages do (`updates[0].scatter`).
// A message type within itself (ClusterIdentity.resharded_from) is walked
// once: its enum fields are the same.
void ForEachEnumField(
    const Descriptor* type, const std::string& prefix,
    std::vector<const FieldDescriptor*>& fields,
    const std::function<void(const std::string&,
                             const std::vector<const FieldDescriptor*>&)>&
        visit) {
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->is_map()) continue;
    const std::string path =
        absl::StrCat(prefix, field->name(), field->is_repeated() ? "[0]" : "");
    fields.push_back(field);
    if (field->type() == FieldDescriptor::TYPE_ENUM) {
      visit(path, fields);
    } else if (field->type() == FieldDescriptor::TYPE_MESSAGE &&
               !Encloses(type, fields, field->message_type())) {
      ForEachEnumField(field->message_type(), path + ".", fields, visit);
    }
    fields.pop_back();
  }
}

// `request` with the enum field at the end of `fields` set to `value`.
void SetEnum(Message* request,
             const std::vector<const FieldDescriptor*>& fields, int value) {
  Message* message = request;
  for (size_t i = 0; i + 1 < fields.size(); ++i) {
    const FieldDescriptor* field = fields[i];
    message = field->is_repeated()
                  ? message->GetReflection()->AddMessage(message, field)
                  : message->GetReflection()->MutableMessage(message, field);
  }
  if (fields.back()->is_repeated()) {
    message->GetReflection()->AddEnumValue(message, fields.back(), value);
  } else {
    message->GetReflection()->SetEnumValue(message, fields.back(), value);
  }
}

TEST(UnknownEnums, EveryEnumFieldOfEveryRequestIsChecked) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  VS_ASSERT_OK(Reuse(*client, "w"));
  google::protobuf::DynamicMessageFactory factory;
  std::set<std::string> checked;
  for (const MethodDescriptor* method : AllMethods()) {
    std::vector<const FieldDescriptor*> fields;
    ForEachEnumField(
        method->input_type(), "", fields,
        [&](const std::string& path,
            const std::vector<const FieldDescriptor*>& fields) {
          std::unique_ptr<Message> request(
              factory.GetPrototype(method->input_type())->New());
          SetEnum(request.get(), fields, 9999);
          const grpc::Status status = CallRaw(server.address(), Path(method),
                                              request->SerializeAsString());
          EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
              << method->name() << " " << path << ": "
              << status.error_message();
          EXPECT_THAT(status.error_message(), StartsWith("Unknown "));
          EXPECT_THAT(status.error_message(),
                      EndsWith(absl::StrCat(" 9999 in field ", path)));
          checked.insert(absl::StrCat(method->name(), " ", path));
        });
  }
  // The enums of the requests, at least (every one reachable is checked).
  for (const char* expected :
       {"GetVariable mode", "GetVariable dtype", "GetVariable initializer.kind",
        "GetVariable initializer.mode", "GetVariable initializer.distribution",
        "GetVariable initializer.value.dtype", "Assign value.dtype",
        "AssignAdd delta.dtype", "BatchUpdate updates[0].scatter.mode",
        "BatchUpdate updates[0].apply_gradient.gradient.dtype",
        "Gather indices.dtype", "WriteStream header.dtype",
        "SyncApply updates[0].assign.dtype"}) {
    EXPECT_TRUE(checked.count(expected)) << expected;
  }
  VS_ASSERT_OK_AND_ASSIGN(v1::ServerInfo info, client->GetServerInfo());
  EXPECT_EQ(info.variable_count(), 1);
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client->Read("w"));
  EXPECT_EQ(read.version, 1);
}

TEST(ListPageTokens, ATokenTheServerDidNotIssueIsInvalidArgument) {
  TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  for (const char* name : {"a/x", "a/y", "a/z/1", "b/q"}) {
    VS_ASSERT_OK(Reuse(*client, name));
  }
  v1::ListVariablesRequest request;
  request.set_scope("a");
  request.set_page_size(1);
  VS_ASSERT_OK_AND_ASSIGN(v1::ListVariablesResponse first,
                          client->ListVariables(request));
  ASSERT_EQ(first.next_page_token(), "a/y");
  // Tokens the server issued work, and so do the resume keys of child
  // scopes a cluster client derives from them.
  for (const char* token : {"a/y", "a/z/"}) {
    request.set_page_token(token);
    VS_EXPECT_OK(client->ListVariables(request).status()) << token;
  }
  for (const char* token : {"garbage!", "b/q", "a//y", "a", "/a/y"}) {
    request.set_page_token(token);
    EXPECT_THAT(client->ListVariables(request),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "page_token is not one this server issued for this "
                         "listing: pass back a next_page_token unchanged"))
        << token;
  }
}

TEST(MessageLimit, ARequestOneByteOverTheLimitIsResourceExhausted) {
  server::ServerOptions options;
  options.max_message_bytes = 1 << 20;
  TestServer server(options);
  // A ReadRequest of exactly the limit: the tag, a 3-byte length, the name.
  v1::ReadRequest request;
  request.set_name(std::string((1 << 20) - 4, 'n'));
  ASSERT_EQ(request.ByteSizeLong(), 1 << 20);
  const std::string read = "/varscope.v1.VariableService/Read";
  grpc::Status status =
      CallRaw(server.address(), read, request.SerializeAsString());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();  // it arrived, and the name is too long
  request.mutable_name()->push_back('n');
  status = CallRaw(server.address(), read, request.SerializeAsString());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            "Received message larger than max (1048577 vs. 1048576)");
}

// The size of a ReadResponse of a float32 vector of `n` elements.
int64_t ReadReplyBytes(int64_t n) {
  v1::ReadResponse reply;
  TensorToProto(Tensor(v1::DT_FLOAT, {n}), reply.mutable_value());
  reply.set_version(1);
  return static_cast<int64_t>(reply.ByteSizeLong());
}

TEST(MessageLimit, AReplyOverTheLimitIsRefusedAndReadsFallBackToStreams) {
  constexpr int64_t kN = 100000;
  server::ServerOptions options;
  options.max_message_bytes = ReadReplyBytes(kN);
  TestServer server(options);
  std::shared_ptr<Client> client = server.NewClient();
  VariableScope scope;
  GetVariableOptions get;
  get.shape = std::vector<int64_t>{kN};
  VS_ASSERT_OK(GetVariable(client, scope, "fits", get).status());
  get.shape = std::vector<int64_t>{kN + 1};
  VS_ASSERT_OK(GetVariable(client, scope, "over", get).status());

  const std::string read = "/varscope.v1.VariableService/Read";
  v1::ReadRequest request;
  request.set_name("fits");
  std::vector<std::string> replies;
  grpc::Status status =
      CallRaw(server.address(), read, request.SerializeAsString(), &replies);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(static_cast<int64_t>(replies[0].size()), options.max_message_bytes);

  request.set_name("over");
  status = CallRaw(server.address(), read, request.SerializeAsString());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(),
            absl::StrCat("Reading variable over takes a reply of ",
                         ReadReplyBytes(kN + 1),
                         " bytes, more than this server's message limit of ",
                         options.max_message_bytes,
                         " (--max-message-bytes); read it with ReadStream"));
  // The client streams it, in messages within the limit.
  VS_ASSERT_OK_AND_ASSIGN(ReadResult value, client->Read("over"));
  EXPECT_EQ(value.value.num_elements(), kN + 1);

  v1::BatchReadRequest batch;
  batch.add_names("fits");
  batch.add_names("over");
  EXPECT_THAT(
      client->BatchRead(batch),
      StatusIs(absl::StatusCode::kResourceExhausted,
               ::testing::MatchesRegex(
                   "The reply has [0-9]+ bytes, more than this server's "
                   "message limit of [0-9]+ \\(--max-message-bytes\\)")));
}

}  // namespace
}  // namespace varscope
