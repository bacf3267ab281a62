// Roles, scopes and client certificates: every method of VariableService
// and AdminService under each role, names confined to a scope, mutual TLS.
#include "server/service/access.h"

#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_matchers.h"
#include "common/transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/service/server.h"
#include "tests/testing/test_server.h"
#include "varscope/v1/admin_service.grpc.pb.h"
#include "varscope/v1/variable_service.grpc.pb.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::varscope::testing::PollUntil;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Shell(const std::string& command) {
  ASSERT_EQ(std::system((command + " 2>/dev/null").c_str()), 0) << command;
}

// Token ids as logs and errors show them (first 8 hex digits of SHA-256).
constexpr char kReadToken[] = "reader-token";
constexpr char kWriteToken[] = "writer-token";
constexpr char kAdminToken[] = "admin-token";
constexpr char kScopedToken[] = "scoped-token";

// A CA, a server certificate it signed, client certificates (CN=worker-1
// and CN=dashboard signed by it, CN=worker-1 signed by another CA), and a
// token file.
class AccessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    for (const std::string ca : {"ca", "other-ca"}) {
      Shell(absl::StrCat(
          "openssl req -x509 -newkey ec -pkeyopt "
          "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=",
          ca, " -keyout ", Path(ca + ".key"), " -out ", Path(ca + ".pem")));
    }
    auto sign = [](const std::string& name, const std::string& cn,
                   const std::string& ca, const std::string& san) {
      Shell(absl::StrCat(
          "openssl req -newkey ec -pkeyopt "
          "ec_paramgen_curve:prime256v1 -nodes -subj /CN=",
          cn, " -keyout ", Path(name + ".key"), " -out ", Path(name + ".csr")));
      std::ofstream(Path(name + ".ext")) << "subjectAltName=" << san << "\n";
      Shell(absl::StrCat("openssl x509 -req -days 2 -in ", Path(name + ".csr"),
                         " -CA ", Path(ca + ".pem"), " -CAkey ",
                         Path(ca + ".key"), " -CAcreateserial -extfile ",
                         Path(name + ".ext"), " -out ", Path(name + ".pem")));
    };
    sign("server", "localhost", "ca", "IP:127.0.0.1,DNS:localhost");
    sign("worker", "worker-1", "ca", "DNS:worker-1.example");
    sign("dashboard", "dashboard", "ca", "DNS:dash.example");
    sign("stranger", "stranger", "ca", "DNS:stranger.example");
    sign("impostor", "worker-1", "other-ca", "DNS:worker-1.example");
    sign("other-server", "localhost", "other-ca", "IP:127.0.0.1,DNS:localhost");
    std::ofstream(Path("tokens")) << "# roles\n"
                                  << kReadToken << " read\n"
                                  << kWriteToken << " write\n\n"
                                  << kAdminToken << " admin\n"
                                  << kScopedToken << " admin scope=team_a/\n"
                                  << "cert:worker-1 write\n"
                                  << "cert:dash.example read\n";
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Path(const std::string& name) {
    return absl::StrCat(dir_->path(), "/", name);
  }

  static server::ServerOptions Secure(bool client_certificates) {
    server::ServerOptions options;
    options.security.tls_cert_file = Path("server.pem");
    options.security.tls_key_file = Path("server.key");
    options.security.auth_token_file = Path("tokens");
    if (client_certificates) {
      options.security.tls_client_ca_file = Path("ca.pem");
    }
    options.backup_root = backups_.path();
    return options;
  }

  static std::shared_ptr<grpc::Channel> Channel(const TestServer& server,
                                                const std::string& token,
                                                const std::string& cert = "") {
    ClientSecurity security;
    security.tls_root_certs = ReadAll(Path("ca.pem"));
    security.auth_token = token;
    if (!cert.empty()) {
      security.tls_cert_chain = ReadAll(Path(cert + ".pem"));
      security.tls_private_key = ReadAll(Path(cert + ".key"));
    }
    return grpc::CreateChannel(server.address(), ChannelCredentials(security));
  }

  static std::string Id(const std::string& token) {
    return server::AccessList::Parse(token, "t")->ForToken(token)->identity;
  }

  static TempDir* dir_;
  static TempDir backups_;
};

TempDir* AccessTest::dir_ = nullptr;
TempDir AccessTest::backups_;

#define ASSERT_GRPC_OK(expr)                              \
  do {                                                    \
    const grpc::Status status_ = (expr);                  \
    ASSERT_TRUE(status_.ok()) << status_.error_message(); \
  } while (false)
#define EXPECT_GRPC_OK(expr)                              \
  do {                                                    \
    const grpc::Status status_ = (expr);                  \
    EXPECT_TRUE(status_.ok()) << status_.error_message(); \
  } while (false)

v1::Tensor Floats(std::vector<float> values) {
  v1::Tensor tensor;
  tensor.set_dtype(v1::DT_FLOAT);
  tensor.mutable_shape()->add_dims(static_cast<int64_t>(values.size()));
  tensor.set_content(std::string(reinterpret_cast<const char*>(values.data()),
                                 values.size() * sizeof(float)));
  return tensor;
}

// Calls of every method, each on variables of its own (`v` exists, made by
// an admin just before).
struct Call {
  const char* method;
  server::Role needed;
  std::function<grpc::Status(v1::VariableService::Stub&,
                             v1::AdminService::Stub&, const std::string& v,
                             int n)>
      run;
};

template <typename Response, typename Request, typename Stub, typename Method>
grpc::Status Unary(Stub& stub, Method method, const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
  Response response;
  return (stub.*method)(&context, request, &response);
}

std::vector<Call> EveryMethod() {
  using VS = v1::VariableService::Stub;
  using AS = v1::AdminService::Stub;
  auto get = [](v1::ReuseMode mode, bool fresh) {
    return [mode, fresh](VS& s, AS&, const std::string& v, int n) {
      v1::GetVariableRequest r;
      r.set_name(fresh ? absl::StrCat("team_a/new", n) : v);
      r.set_mode(mode);
      r.set_dtype(v1::DT_FLOAT);
      r.mutable_shape()->add_dims(2);
      return Unary<v1::GetVariableResponse>(s, &VS::GetVariable, r);
    };
  };
  return {
      {"GetVariable(REUSE)", server::Role::kRead, get(v1::REUSE, false)},
      {"GetVariable(CREATE)", server::Role::kWrite, get(v1::CREATE, true)},
      {"GetVariable(AUTO_REUSE)", server::Role::kWrite,
       get(v1::AUTO_REUSE, false)},
      {"Read", server::Role::kRead,
       [](VS& s, AS&, const std::string& v, int) {
         v1::ReadRequest r;
         r.set_name(v);
         return Unary<v1::ReadResponse>(s, &VS::Read, r);
       }},
      {"Assign", server::Role::kWrite,
       [](VS& s, AS&, const std::string& v, int) {
         v1::AssignRequest r;
         r.set_name(v);
         *r.mutable_value() = Floats({1, 2});
         return Unary<v1::UpdateResponse>(s, &VS::Assign, r);
       }},
      {"AssignAdd", server::Role::kWrite,
       [](VS& s, AS&, const std::string& v, int) {
         v1::AssignAddRequest r;
         r.set_name(v);
         *r.mutable_delta() = Floats({1, 2});
         return Unary<v1::UpdateResponse>(s, &VS::AssignAdd, r);
       }},
      {"ListVariables", server::Role::kRead,
       [](VS& s, AS&, const std::string&, int) {
         v1::ListVariablesRequest r;
         r.set_recursive(true);
         return Unary<v1::ListVariablesResponse>(s, &VS::ListVariables, r);
       }},
      {"Stat", server::Role::kRead,
       [](VS& s, AS&, const std::string& v, int) {
         v1::StatRequest r;
         r.set_name(v);
         return Unary<v1::VariableInfo>(s, &VS::Stat, r);
       }},
      {"Delete", server::Role::kAdmin,
       [](VS& s, AS&, const std::string& v, int) {
         v1::DeleteRequest r;
         r.set_name(v);
         return Unary<v1::DeleteResponse>(s, &VS::Delete, r);
       }},
      {"Rename", server::Role::kAdmin,
       [](VS& s, AS&, const std::string& v, int n) {
         v1::RenameRequest r;
         r.set_old_name(v);
         r.set_new_name(absl::StrCat("team_a/renamed", n));
         return Unary<v1::RenameResponse>(s, &VS::Rename, r);
       }},
      {"GetServerInfo", server::Role::kRead,
       [](VS& s, AS&, const std::string&, int) {
         return Unary<v1::ServerInfo>(s, &VS::GetServerInfo,
                                      v1::ServerInfoRequest());
       }},
      {"BatchUpdate", server::Role::kWrite,
       [](VS& s, AS&, const std::string& v, int) {
         v1::BatchUpdateRequest r;
         v1::Update* u = r.add_updates();
         u->set_name(v);
         *u->mutable_assign() = Floats({3, 4});
         return Unary<v1::BatchUpdateResponse>(s, &VS::BatchUpdate, r);
       }},
      {"BatchRead", server::Role::kRead,
       [](VS& s, AS&, const std::string& v, int) {
         v1::BatchReadRequest r;
         r.add_names(v);
         return Unary<v1::BatchReadResponse>(s, &VS::BatchRead, r);
       }},
      {"Gather", server::Role::kRead,
       [](VS& s, AS&, const std::string& v, int) {
         v1::GatherRequest r;
         r.set_name(v);
         r.mutable_indices()->set_dtype(v1::DT_INT64);
         r.mutable_indices()->mutable_shape()->add_dims(1);
         r.mutable_indices()->set_content(std::string(8, '\0'));
         return Unary<v1::GatherResponse>(s, &VS::Gather, r);
       }},
      {"ReadStream", server::Role::kRead,
       [](VS& s, AS&, const std::string& v, int) {
         grpc::ClientContext context;
         v1::ReadRequest r;
         r.set_name(v);
         auto reader = s.ReadStream(&context, r);
         v1::TensorChunk chunk;
         while (reader->Read(&chunk)) {
         }
         return reader->Finish();
       }},
      {"WriteStream", server::Role::kWrite,
       [](VS& s, AS&, const std::string& v, int) {
         grpc::ClientContext context;
         v1::UpdateResponse response;
         auto writer = s.WriteStream(&context, &response);
         v1::TensorChunk chunk;
         chunk.mutable_header()->set_name(v);
         chunk.mutable_header()->set_dtype(v1::DT_FLOAT);
         chunk.mutable_header()->mutable_shape()->add_dims(2);
         chunk.set_data(Floats({5, 6}).content());
         writer->Write(chunk);
         writer->WritesDone();
         return writer->Finish();
       }},
      {"SyncApply", server::Role::kWrite,
       [](VS& s, AS&, const std::string& v, int) {
         v1::SyncApplyRequest r;
         r.set_accumulator("acc");
         r.set_replicas_to_aggregate(1);
         r.set_global_step("team_a/global_step");
         v1::Update* u = r.add_updates();
         u->set_name(v);
         u->mutable_apply_gradient()
             ->mutable_optimizer()
             ->mutable_gradient_descent();
         *u->mutable_apply_gradient()->mutable_gradient() = Floats({1, 1});
         return Unary<v1::SyncApplyResponse>(s, &VS::SyncApply, r);
       }},
      {"WaitForStep", server::Role::kRead,
       [](VS& s, AS&, const std::string&, int) {
         v1::WaitForStepRequest r;
         r.set_global_step("team_a/global_step");
         return Unary<v1::WaitForStepResponse>(s, &VS::WaitForStep, r);
       }},
      {"Checkpoint", server::Role::kAdmin,
       [](VS&, AS& a, const std::string&, int n) {
         v1::CheckpointRequest r;
         r.set_directory(absl::StrCat("ckpt", n));
         return Unary<v1::CheckpointResponse>(a, &AS::Checkpoint, r);
       }},
      {"Backup", server::Role::kAdmin,
       [](VS&, AS& a, const std::string&, int) {
         v1::BackupRequest r;
         r.set_directory("backups");
         return Unary<v1::BackupResponse>(a, &AS::Backup, r);
       }},
      {"Pause", server::Role::kAdmin,
       [](VS&, AS& a, const std::string&, int n) {
         v1::PauseRequest r;
         r.set_pause_id(absl::StrCat("p", n));
         r.set_lease_micros(60'000'000);
         grpc::Status status = Unary<v1::PauseResponse>(a, &AS::Pause, r);
         if (status.ok()) {  // the next calls must not wait for its lease
           v1::ResumeRequest resume;
           resume.set_pause_id(r.pause_id());
           status = Unary<v1::ResumeResponse>(a, &AS::Resume, resume);
         }
         return status;
       }},
      {"Resume", server::Role::kAdmin,
       [](VS&, AS& a, const std::string&, int n) {
         v1::ResumeRequest r;
         r.set_pause_id(absl::StrCat("p", n));
         return Unary<v1::ResumeResponse>(a, &AS::Resume, r);
       }},
      {"ListIntents", server::Role::kWrite,
       [](VS&, AS& a, const std::string&, int) {
         return Unary<v1::ListIntentsResponse>(a, &AS::ListIntents,
                                               v1::ListIntentsRequest());
       }},
      {"DeleteIntent", server::Role::kWrite,
       [](VS&, AS& a, const std::string&, int n) {
         v1::DeleteIntentRequest r;
         r.mutable_id()->set_client_id("c");
         r.mutable_id()->set_sequence(n);
         return Unary<v1::DeleteIntentResponse>(a, &AS::DeleteIntent, r);
       }},
  };
}

// Every variable's name and version, as the admin sees them.
std::map<std::string, int64_t> Snapshot(v1::VariableService::Stub& stub) {
  grpc::ClientContext context;
  v1::ListVariablesRequest request;
  request.set_recursive(true);
  v1::ListVariablesResponse response;
  EXPECT_TRUE(stub.ListVariables(&context, request, &response).ok());
  std::map<std::string, int64_t> versions;
  for (const auto& entry : response.entries()) {
    versions[entry.name()] = entry.variable().version();
  }
  return versions;
}

TEST_F(AccessTest, EveryMethodUnderEveryRole) {
  TestServer server(Secure(/*client_certificates=*/false));
  auto admin_channel = Channel(server, kAdminToken);
  v1::VariableService::Stub admin(admin_channel);
  {
    v1::GetVariableRequest step;
    step.set_name("team_a/global_step");
    step.set_mode(v1::CREATE);
    step.set_dtype(v1::DT_INT64);
    step.mutable_shape();
    ASSERT_GRPC_OK(Unary<v1::GetVariableResponse>(
        admin, &v1::VariableService::Stub::GetVariable, step));
  }
  int n = 0;
  for (const auto& [token, role] :
       std::vector<std::pair<std::string, server::Role>>{
           {kReadToken, server::Role::kRead},
           {kWriteToken, server::Role::kWrite},
           {kAdminToken, server::Role::kAdmin}}) {
    auto channel = Channel(server, token);
    v1::VariableService::Stub variables(channel);
    v1::AdminService::Stub admin_service(channel);
    for (const Call& call : EveryMethod()) {
      ++n;
      const std::string v = absl::StrCat("team_a/v", n);
      v1::GetVariableRequest make;
      make.set_name(v);
      make.set_mode(v1::CREATE);
      make.set_dtype(v1::DT_FLOAT);
      make.mutable_shape()->add_dims(2);
      ASSERT_GRPC_OK(Unary<v1::GetVariableResponse>(
          admin, &v1::VariableService::Stub::GetVariable, make));
      const auto before = Snapshot(admin);
      const grpc::Status status = call.run(variables, admin_service, v, n);
      SCOPED_TRACE(absl::StrCat(server::RoleName(role), " ", call.method));
      if (role >= call.needed) {
        EXPECT_TRUE(status.ok()) << status.error_message();
      } else {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
        std::string method = call.method;
        method = method.substr(0, method.find('('));
        EXPECT_EQ(status.error_message(),
                  absl::StrCat("Token ", Id(token).substr(6), " has role ",
                               server::RoleName(role), "; ", method,
                               " needs role ", server::RoleName(call.needed)));
        EXPECT_EQ(Snapshot(admin), before) << "a refused call changed nothing";
      }
    }
  }
  EXPECT_TRUE(std::filesystem::is_directory(backups_.path() + "/backups"));
}

TEST_F(AccessTest, OldOneColumnFilesGrantAdmin) {
  VS_ASSERT_OK_AND_ASSIGN(server::AccessList list,
                          server::AccessList::Parse("# old\nabc\n", "f"));
  EXPECT_EQ(list.ForToken("abc")->role, server::Role::kAdmin);
  EXPECT_EQ(list.ForToken("abc")->identity, "token ba7816bf");
  EXPECT_FALSE(list.ForToken("ab").has_value());
}

TEST_F(AccessTest, MalformedLinesNameTheirNumber) {
  const std::string syntax =
      " (expected TOKEN [read|write|admin] [scope=PREFIX] or cert:NAME ROLE "
      "[scope=PREFIX])";
  for (const auto& [text, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"a read\n\nb reader\n", "line 3: unknown role 'reader'"},
           {"a read team_a/\n", "line 1: 'team_a/' is not scope=PREFIX"},
           {"a read scope=\n", "line 1: 'scope=' is not scope=PREFIX"},
           {"a read scope=x/ more\n", "line 1: too many words"},
           {"cert:worker\n", "line 1: a certificate needs a role"},
           {"cert: read\n", "line 1: cert: needs a name"}}) {
    EXPECT_THAT(server::AccessList::Parse(text, "f").status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("The token file f ", message, syntax)))
        << text;
  }
  EXPECT_THAT(server::AccessList::Parse("# nothing\n\n", "f").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The token file f has no token"));
}

TEST_F(AccessTest, ScopesConfineNamesAndFilterListings) {
  TestServer server(Secure(/*client_certificates=*/false));
  auto admin_channel = Channel(server, kAdminToken);
  v1::VariableService::Stub admin(admin_channel);
  for (const std::string name :
       {"team_a/w", "team_a/sub/x", "team_b/w", "top"}) {
    v1::GetVariableRequest make;
    make.set_name(name);
    make.set_mode(v1::CREATE);
    make.set_dtype(v1::DT_FLOAT);
    make.mutable_shape()->add_dims(2);
    ASSERT_GRPC_OK(Unary<v1::GetVariableResponse>(
        admin, &v1::VariableService::Stub::GetVariable, make));
  }
  auto channel = Channel(server, kScopedToken);
  v1::VariableService::Stub scoped(channel);
  v1::AdminService::Stub scoped_admin(channel);
  const std::string who = absl::StrCat("Token ", Id(kScopedToken).substr(6));
  v1::ReadRequest read;
  read.set_name("team_a/w");
  EXPECT_GRPC_OK(
      Unary<v1::ReadResponse>(scoped, &v1::VariableService::Stub::Read, read));
  read.set_name("team_b/w");
  grpc::Status status =
      Unary<v1::ReadResponse>(scoped, &v1::VariableService::Stub::Read, read);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            absl::StrCat(who,
                         " is confined to names under team_a/; Read of "
                         "'team_b/w' is outside it"));
  const auto before = Snapshot(admin);
  v1::RenameRequest rename;
  rename.set_old_name("team_a/w");
  rename.set_new_name("team_b/stolen");
  status = Unary<v1::RenameResponse>(scoped, &v1::VariableService::Stub::Rename,
                                     rename);
  EXPECT_EQ(status.error_message(),
            absl::StrCat(who,
                         " is confined to names under team_a/; Rename of "
                         "'team_b/stolen' is outside it"));
  v1::CheckpointRequest checkpoint;
  checkpoint.set_directory("scoped");
  status = Unary<v1::CheckpointResponse>(
      scoped_admin, &v1::AdminService::Stub::Checkpoint, checkpoint);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            absl::StrCat(who,
                         " is confined to names under team_a/; Checkpoint "
                         "covers the whole store"));
  EXPECT_EQ(Snapshot(admin), before);

  auto names = [&](const v1::ListVariablesRequest& request) {
    v1::ListVariablesResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(scoped.ListVariables(&context, request, &response).ok());
    std::vector<std::string> listed;
    for (const auto& entry : response.entries()) listed.push_back(entry.name());
    return listed;
  };
  v1::ListVariablesRequest list;
  EXPECT_THAT(names(list), ElementsAre("team_a"));
  list.set_recursive(true);
  EXPECT_THAT(names(list), ElementsAre("team_a/sub/x", "team_a/w"));
  list.set_scope("team_b");
  EXPECT_THAT(names(list), ElementsAre());

  v1::BatchReadRequest batch;
  v1::BatchReadResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(scoped.BatchRead(&context, batch, &response).ok());
  std::vector<std::string> read_names;
  for (const auto& entry : response.entries())
    read_names.push_back(entry.name());
  EXPECT_THAT(read_names, ElementsAre("team_a/sub/x", "team_a/w"));
}

TEST_F(AccessTest, ClientCertificatesMapToRoles) {
  TestServer server(Secure(/*client_certificates=*/true));
  auto call = [&](const std::string& cert, const std::string& token) {
    auto channel = Channel(server, token, cert);
    v1::VariableService::Stub stub(channel);
    v1::GetVariableRequest make;
    make.set_name("w");
    make.set_mode(v1::AUTO_REUSE);
    make.set_dtype(v1::DT_FLOAT);
    make.mutable_shape()->add_dims(2);
    return Unary<v1::GetVariableResponse>(
        stub, &v1::VariableService::Stub::GetVariable, make);
  };
  // CN=worker-1 is a writer; dashboard's DNS SAN dash.example a reader.
  EXPECT_GRPC_OK(call("worker", ""));
  grpc::Status status = call("dashboard", "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            "Certificate dash.example has role read; GetVariable needs role "
            "write");
  // A certificate the file does not name.
  status = call("stranger", "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(),
            "The client certificate stranger is not in the token file");
  // A token still decides for a caller with a certificate.
  EXPECT_GRPC_OK(call("dashboard", kAdminToken));
  // No certificate, or one of another CA: the handshake fails.
  EXPECT_EQ(call("", kAdminToken).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(call("impostor", "").error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Lines of a varscoped child up to (and with) the next JSON event `event`.
nlohmann::json NextEvent(testing::ChildProcess& child,
                         const std::string& event) {
  for (;;) {
    absl::StatusOr<std::string> line = child.ReadLine();
    if (!line.ok()) {
      ADD_FAILURE() << "varscoped ended before event " << event;
      return {};
    }
    if (line->empty() || (*line)[0] != '{') continue;
    nlohmann::json parsed = nlohmann::json::parse(*line);
    if (parsed["event"] == event) return parsed;
  }
}

// The ports of a varscoped child, from its "serving on" line (the metrics
// port only if `metrics_port` is not null).
void ServingPorts(testing::ChildProcess& child, int* port, int* metrics_port) {
  for (;;) {
    VS_ASSERT_OK_AND_ASSIGN(const std::string text, child.ReadLine());
    absl::string_view line = text;
    if (absl::ConsumePrefix(&line, "varscoped serving on 127.0.0.1:")) {
      ASSERT_TRUE(absl::SimpleAtoi(line.substr(0, line.find(' ')), port));
      if (metrics_port == nullptr) return;
      line.remove_prefix(line.find("metrics on 127.0.0.1:") + 21);
      ASSERT_TRUE(
          absl::SimpleAtoi(line.substr(0, line.find(')')), metrics_port));
      return;
    }
  }
}

TEST_F(AccessTest, SighupRereadsTheTokenFileAndCallsAreAudited) {
  TempDir data;
  const std::string tokens = data.path() + "/tokens";
  std::ofstream(tokens) << "old-token admin\n";
  VS_ASSERT_OK_AND_ASSIGN(
      auto child,
      testing::ChildProcess::Start(
          {testing::VarscopedPath(), "--listen=127.0.0.1:0",
           "--data-dir=" + data.path() + "/store",
           "--tls-cert-file=" + Path("server.pem"),
           "--tls-key-file=" + Path("server.key"),
           "--auth-token-file=" + tokens, "--backup-root=" + data.path(),
           "--log-format=json", "--metrics-listen=127.0.0.1:0"},
          /*capture_stderr=*/true));
  int port = 0;
  int metrics_port = 0;
  ASSERT_NO_FATAL_FAILURE(ServingPorts(*child, &port, &metrics_port));
  ClientSecurity security;
  security.tls_root_certs = ReadAll(Path("ca.pem"));
  auto stub = [&](const std::string& token) {
    security.auth_token = token;
    return std::make_unique<v1::VariableService::Stub>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), ChannelCredentials(security)));
  };
  auto old_stub = stub("old-token");
  v1::GetVariableRequest step;
  step.set_name("global_step");
  step.set_mode(v1::CREATE);
  step.set_dtype(v1::DT_INT64);
  step.mutable_shape();
  ASSERT_GRPC_OK(Unary<v1::GetVariableResponse>(
      *old_stub, &v1::VariableService::Stub::GetVariable, step));
  v1::GetVariableRequest w;
  w.set_name("w");
  w.set_mode(v1::CREATE);
  w.set_dtype(v1::DT_FLOAT);
  w.mutable_shape()->add_dims(2);
  ASSERT_GRPC_OK(Unary<v1::GetVariableResponse>(
      *old_stub, &v1::VariableService::Stub::GetVariable, w));
  // A call in flight across the reload: it waits for step 1.
  grpc::Status waited;
  v1::WaitForStepResponse reached;
  std::thread waiter([&] {
    v1::WaitForStepRequest request;
    request.set_step(1);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::minutes(2));
    waited = old_stub->WaitForStep(&context, request, &reached);
  });
  httplib::Client metrics("127.0.0.1", metrics_port);
  ASSERT_TRUE(PollUntil(
      [&] {
        auto got = metrics.Get("/metrics");
        return got &&
               absl::StrContains(got->body, "\nvarscope_sync_waiting 1\n");
      },
      absl::Minutes(2)))
      << "WaitForStep never started waiting";

  std::ofstream(tokens) << "new-token write\nboss admin\n";
  child->Kill(SIGHUP);
  EXPECT_EQ(NextEvent(*child, "reload")["token_file"], tokens);
  auto new_stub = stub("new-token");
  EXPECT_GRPC_OK(Unary<v1::ServerInfo>(
      *new_stub, &v1::VariableService::Stub::GetServerInfo,
      v1::ServerInfoRequest()));
  grpc::Status status = Unary<v1::ServerInfo>(
      *old_stub, &v1::VariableService::Stub::GetServerInfo,
      v1::ServerInfoRequest());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "The token is not one this server accepts");
  nlohmann::json line = NextEvent(*child, "denied");
  EXPECT_EQ(line["level"], "warning");
  EXPECT_TRUE(
      absl::StartsWith(line["peer"].get<std::string>(), "ipv4:127.0.0.1:"))
      << line;
  EXPECT_EQ(line["identity"], "");
  EXPECT_EQ(line["method"], "GetServerInfo");
  EXPECT_EQ(line["name"], "");
  EXPECT_EQ(line["code"], "UNAUTHENTICATED");
  EXPECT_EQ(line["message"], "The token is not one this server accepts");

  // The writer completes the step the old admin's call waits for.
  v1::SyncApplyRequest apply;
  apply.set_accumulator("acc");
  apply.set_replicas_to_aggregate(1);
  v1::Update* update = apply.add_updates();
  update->set_name("w");
  update->mutable_apply_gradient()
      ->mutable_optimizer()
      ->mutable_gradient_descent();
  *update->mutable_apply_gradient()->mutable_gradient() = Floats({1, 1});
  EXPECT_GRPC_OK(Unary<v1::SyncApplyResponse>(
      *new_stub, &v1::VariableService::Stub::SyncApply, apply));
  waiter.join();
  EXPECT_TRUE(waited.ok()) << waited.error_message();
  EXPECT_EQ(reached.global_step(), 1);

  v1::DeleteRequest remove;
  remove.set_name("global_step");
  status = Unary<v1::DeleteResponse>(
      *new_stub, &v1::VariableService::Stub::Delete, remove);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  line = NextEvent(*child, "denied");
  EXPECT_EQ(line["identity"], Id("new-token"));
  EXPECT_EQ(line["method"], "Delete");
  EXPECT_EQ(line["name"], "global_step");
  EXPECT_EQ(line["code"], "PERMISSION_DENIED");
  EXPECT_EQ(line["message"],
            absl::StrCat("Token ", Id("new-token").substr(6),
                         " has role write; Delete needs role admin"));
  EXPECT_EQ(line.dump().find("new-token"), std::string::npos)
      << "never the token itself";

  security.auth_token = "boss";
  v1::AdminService::Stub admin(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), ChannelCredentials(security)));
  v1::CheckpointRequest checkpoint;
  checkpoint.set_directory("ckpt");
  EXPECT_GRPC_OK(Unary<v1::CheckpointResponse>(
      admin, &v1::AdminService::Stub::Checkpoint, checkpoint));
  line = NextEvent(*child, "admin_call");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["identity"], Id("boss"));
  EXPECT_EQ(line["method"], "Checkpoint");
  EXPECT_EQ(line["name"], "ckpt");
  EXPECT_TRUE(
      absl::StartsWith(line["peer"].get<std::string>(), "ipv4:127.0.0.1:"));

  // A bad new file keeps the old one.
  std::ofstream(tokens) << "new-token writer\n";
  child->Kill(SIGHUP);
  line = NextEvent(*child, "reload_failed");
  EXPECT_EQ(line["level"], "error");
  EXPECT_EQ(line["error"],
            absl::StrCat("INVALID_ARGUMENT: The token file ", tokens,
                         " line 1: unknown role 'writer' (expected TOKEN "
                         "[read|write|admin] [scope=PREFIX] or cert:NAME ROLE "
                         "[scope=PREFIX])"));
  EXPECT_GRPC_OK(Unary<v1::ServerInfo>(
      *new_stub, &v1::VariableService::Stub::GetServerInfo,
      v1::ServerInfoRequest()));
  child->Kill(SIGTERM);
  EXPECT_EQ(child->Wait(), 0);
}

TEST_F(AccessTest, SighupRereadsTheTlsFilesForNewConnections) {
  namespace fs = std::filesystem;
  TempDir data;
  const std::string cert = data.path() + "/server.pem";
  const std::string key = data.path() + "/server.key";
  fs::copy_file(Path("server.pem"), cert);
  fs::copy_file(Path("server.key"), key);
  VS_ASSERT_OK_AND_ASSIGN(
      auto child,
      testing::ChildProcess::Start(
          {testing::VarscopedPath(), "--listen=127.0.0.1:0",
           "--data-dir=" + data.path() + "/store", "--tls-cert-file=" + cert,
           "--tls-key-file=" + key, "--log-format=json"},
          /*capture_stderr=*/true));
  int port = 0;
  ASSERT_NO_FATAL_FAILURE(ServingPorts(*child, &port, nullptr));
  // Each stub trusts one CA and has a connection of its own.
  auto stub = [&](const std::string& ca) {
    ClientSecurity security;
    security.tls_root_certs = ReadAll(Path(ca + ".pem"));
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return std::make_unique<v1::VariableService::Stub>(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                  ChannelCredentials(security), arguments));
  };
  auto info = [](v1::VariableService::Stub& stub) {
    return Unary<v1::ServerInfo>(stub,
                                 &v1::VariableService::Stub::GetServerInfo,
                                 v1::ServerInfoRequest());
  };
  auto connected = stub("ca");
  ASSERT_GRPC_OK(info(*connected));

  // A key of another certificate is refused; the old pair stays in force.
  fs::copy_file(Path("other-server.pem"), cert,
                fs::copy_options::overwrite_existing);
  child->Kill(SIGHUP);
  nlohmann::json line = NextEvent(*child, "reload_failed");
  EXPECT_EQ(line["tls_cert_file"], cert);
  EXPECT_EQ(line["error"],
            absl::StrCat("INVALID_ARGUMENT: The TLS key ", key,
                         " does not belong to the certificate ", cert));
  EXPECT_GRPC_OK(info(*stub("ca")));

  fs::copy_file(Path("other-server.key"), key,
                fs::copy_options::overwrite_existing);
  child->Kill(SIGHUP);
  EXPECT_EQ(NextEvent(*child, "reload")["tls_cert_file"], cert);
  // gRPC picks the staged pair up within a second; new handshakes use it.
  for (int i = 0;; ++i) {
    ASSERT_LT(i, 1200) << "the new certificate was never served";
    if (info(*stub("other-ca")).ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(info(*stub("ca")).error_code(), grpc::StatusCode::UNAVAILABLE);
  // A connection made before the reload goes on.
  EXPECT_GRPC_OK(info(*connected));
  child->Kill(SIGTERM);
  EXPECT_EQ(child->Wait(), 0);
}

TEST_F(AccessTest, AMalformedTokenFileIsAUsageError) {
  TempDir data;
  const std::string tokens = data.path() + "/tokens";
  std::ofstream(tokens) << "# ok\na read\nb boss\n";
  const auto [status, output] = testing::RunServer(
      data.path() + "/store",
      {"--tls-cert-file=" + Path("server.pem"),
       "--tls-key-file=" + Path("server.key"), "--auth-token-file=" + tokens});
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << output;
  EXPECT_THAT(output, ::testing::HasSubstr(absl::StrCat(
                          "varscoped: INVALID_ARGUMENT: The token file ",
                          tokens, " line 3: unknown role 'boss'")));
}

}  // namespace
}  // namespace varscope
