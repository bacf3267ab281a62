// TLS and tokens end to end: a server with a self-signed certificate and a
// token file, the C++ client and the CLI.
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "client/admin_client.h"
#include "common/cluster.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server.h"
#include "tests/cli/cli_fixture.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::testing::HasSubstr;
using ::varscope::cli::testing::CliResult;
using ::varscope::cli::testing::RunCli;
using ::varscope::testing::IsOk;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TempDir;
using ::varscope::testing::TestServer;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A self-signed certificate for 127.0.0.1 (its own CA), its key, and a token
// file accepting "s3cret" and "other".
class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string command = absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
        "-nodes -days 2 -subj /CN=localhost -addext "
        "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout ",
        Path("key.pem"), " -out ", Path("cert.pem"), " 2>/dev/null");
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    std::ofstream(Path("tokens")) << "# workers\ns3cret\n\nother\n";
    std::ofstream(Path("empty")) << "# none yet\n";
    std::ofstream(Path("token")) << "s3cret\n";
    std::ofstream(Path("roles")) << "s3cret admin\nreader read\n";
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Path(const std::string& name) {
    return absl::StrCat(dir_->path(), "/", name);
  }

  static server::ServerOptions Secure(bool tokens) {
    server::ServerOptions options;
    options.security.tls_cert_file = Path("cert.pem");
    options.security.tls_key_file = Path("key.pem");
    if (tokens) options.security.auth_token_file = Path("tokens");
    return options;
  }

  static ClientOptions Options(std::string token) {
    ClientOptions options;
    options.max_attempts = 1;
    options.timeout = absl::Minutes(2);
    options.security.tls_root_certs = ReadAll(Path("cert.pem"));
    options.security.auth_token = std::move(token);
    return options;
  }

  static TempDir* dir_;
};

TempDir* SecurityTest::dir_ = nullptr;

TEST_F(SecurityTest, TlsServesTlsClientsOnly) {
  TestServer server(Secure(/*tokens=*/false));
  EXPECT_THAT(server.NewClient(Options(""))->Read("nope").status(),
              StatusIs(absl::StatusCode::kNotFound));
  ClientOptions plaintext;
  plaintext.max_attempts = 1;
  plaintext.timeout = absl::Minutes(2);
  EXPECT_THAT(server.NewClient(plaintext)->Read("nope").status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(SecurityTest, CallsNeedAnAcceptedToken) {
  TestServer server(Secure(/*tokens=*/true));
  EXPECT_THAT(server.NewClient(Options("s3cret"))->Read("nope").status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(server.NewClient(Options("other"))->Read("nope").status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(server.NewClient(Options("s3cre"))->Read("nope").status(),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       "The token is not one this server accepts"));
  EXPECT_THAT(server.NewClient(Options(""))->Read("nope").status(),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("This server needs a token")));
  // A rejected caller changed nothing.
  EXPECT_THAT(server.NewClient(Options("s3cret"))->ListVariables({}), IsOk());
}

TEST_F(SecurityTest, CliSendsTheTokenAndHealthChecksNeedNone) {
  TestServer server(Secure(/*tokens=*/true));
  const std::string address = server.address();
  CliResult r = RunCli({"--server", address, "--tls-ca", Path("cert.pem"),
                        "--token-file", Path("token"), "ls"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = RunCli(
      {"--server", address, "ls"}, "",
      {{"VARSCOPE_TLS_CA", Path("cert.pem")}, {"VARSCOPE_TOKEN", "wrong"}});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "varscope ls: UNAUTHENTICATED: The token is not one this server "
            "accepts\n");
  r = RunCli({"--server", address, "--tls-ca", Path("cert.pem"), "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = RunCli({"--server", address, "--tls-ca", Path("missing.pem"), "ls"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, absl::StrCat("varscope ls: INVALID_ARGUMENT: Cannot read "
                                "the TLS CA file ",
                                Path("missing.pem"), "\n"));
}

TEST_F(SecurityTest, CliPresentsItsClientCertificate) {
  // The self-signed certificate is also the only CA clients may use.
  server::ServerOptions options = Secure(/*tokens=*/false);
  options.security.tls_client_ca_file = Path("cert.pem");
  TestServer server(options);
  const std::string address = server.address();
  CliResult r =
      RunCli({"--server", address, "--tls-ca", Path("cert.pem"), "--tls-cert",
              Path("cert.pem"), "--tls-key", Path("key.pem"), "ls"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = RunCli({"--server", address, "--tls-ca", Path("cert.pem"), "ls"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("varscope ls: UNAVAILABLE"));
}

TEST_F(SecurityTest, BadSettingsStopTheServerFromStarting) {
  auto start = [](server::ServerOptions options) {
    TempDir data;
    options.listen_address = "127.0.0.1:0";
    options.data_dir = data.path();
    return server::Server::Start(options).status();
  };
  server::ServerOptions tokens_only;
  tokens_only.security.auth_token_file = Path("tokens");
  EXPECT_THAT(start(tokens_only),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Tokens need TLS (a certificate and a key file): gRPC "
                       "clients send tokens over secure channels only"));
  server::ServerOptions no_key = Secure(false);
  no_key.security.tls_key_file.clear();
  EXPECT_THAT(start(no_key),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "TLS needs both a certificate and a key file"));
  server::ServerOptions missing = Secure(false);
  missing.security.tls_cert_file = Path("nope.pem");
  EXPECT_THAT(start(missing),
              StatusIs(absl::StatusCode::kNotFound,
                       absl::StrCat("Cannot read the TLS certificate file ",
                                    Path("nope.pem"))));
  server::ServerOptions not_pem = Secure(false);
  not_pem.security.tls_cert_file = Path("key.pem");
  EXPECT_THAT(
      start(not_pem),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat("The TLS certificate file ", Path("key.pem"),
                            " holds no PEM certificate")));
  server::ServerOptions no_pem_key = Secure(false);
  no_pem_key.security.tls_key_file = Path("cert.pem");
  EXPECT_THAT(start(no_pem_key),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("The TLS key file ", Path("cert.pem"),
                                    " holds no unencrypted PEM private key")));
  server::ServerOptions empty = Secure(true);
  empty.security.auth_token_file = Path("empty");
  EXPECT_THAT(start(empty),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("The token file ", Path("empty"),
                                    " has no token")));
}

TEST_F(SecurityTest, ReshardNeedsTheAdminRole) {
  server::ServerOptions options = Secure(/*tokens=*/false);
  options.security.auth_token_file = Path("roles");
  TestServer a(options);
  TestServer b(options);
  TestServer c(options);
  const std::vector<std::string> list = {a.address(), b.address()};
  ClientSecurity admin = Options("s3cret").security;
  for (int i = 0; i < 2; ++i) {
    v1::SetClusterIdentityRequest request;
    request.mutable_identity()->set_cluster_id(DerivedClusterId(list));
    request.mutable_identity()->set_shard_index(i);
    request.mutable_identity()->set_shard_count(2);
    request.mutable_identity()->mutable_shards()->Assign(list.begin(),
                                                         list.end());
    // Recording a place needs the admin role too.
    EXPECT_THAT(AdminClient::Connect(list[i], absl::Minutes(2),
                                     Options("reader").security)
                    ->SetClusterIdentity(request)
                    .status(),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         ::testing::EndsWith(" has role read; "
                                             "SetClusterIdentity needs role "
                                             "admin")));
    ASSERT_THAT(AdminClient::Connect(list[i], absl::Minutes(2), admin)
                    ->SetClusterIdentity(request)
                    .status(),
                IsOk());
  }
  std::shared_ptr<Client> worker = Client::Connect(
      absl::StrCat(a.address(), ",", b.address()), Options("s3cret"));
  ASSERT_THAT(worker->Assign("w", Tensor(v1::DT_FLOAT, {1})).status(),
              StatusIs(absl::StatusCode::kNotFound));
  v1::GetVariableRequest get;
  get.set_mode(v1::CREATE);
  get.set_dtype(v1::DT_FLOAT);
  get.mutable_shape()->add_dims(1);
  get.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  for (int i = 0; i < 8; ++i) {
    get.set_name(absl::StrCat("w", i));
    ASSERT_THAT(worker->GetVariable(get).status(), IsOk());
  }
  const std::vector<std::string> args = {
      "reshard", "--from", absl::StrCat(a.address(), ",", b.address()), "--to",
      absl::StrCat(a.address(), ",", b.address(), ",", c.address())};
  CliResult r = RunCli(
      args, "",
      {{"VARSCOPE_TLS_CA", Path("cert.pem")}, {"VARSCOPE_TOKEN", "reader"}});
  EXPECT_EQ(r.code, 3);
  // The re-shard's first admin call is the pause of the old shards.
  EXPECT_THAT(r.err,
              ::testing::StartsWith(
                  "varscope reshard: PERMISSION_DENIED: Shard 0 of 2: Token "));
  EXPECT_THAT(r.err,
              ::testing::EndsWith(" has role read; Pause needs role admin\n"));
  r = RunCli(
      args, "",
      {{"VARSCOPE_TLS_CA", Path("cert.pem")}, {"VARSCOPE_TOKEN", "s3cret"}});
  EXPECT_EQ(r.code, 0) << r.err;
  for (int i = 0; i < 8; ++i) {
    EXPECT_THAT(worker->Read(absl::StrCat("w", i)).status(), IsOk());
  }
}

}  // namespace
}  // namespace varscope
