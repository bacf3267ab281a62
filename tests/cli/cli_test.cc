// The command line itself: server selection, exit codes, usage errors,
// help, server-wide commands (stats, health) and bash completion.
#include "client/cli/cli.h"

#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/variable.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;
using Json = nlohmann::json;

constexpr const char* kCommands[] = {
    "ls", "tree", "show",   "find",   "du",    "diagnose", "get",   "set",
    "rm", "mv",   "export", "import", "stats", "top",      "health"};

Environment EnvWith(std::map<std::string, std::string> vars) {
  Environment env;
  env.getenv = [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  return env;
}

TEST(ExitCode, MapsStatusCodesToTheDocumentedExitCodes) {
  EXPECT_EQ(ExitCode(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCode(absl::NotFoundError("x")), 1);
  EXPECT_EQ(ExitCode(absl::InvalidArgumentError("x")), 2);
  EXPECT_EQ(ExitCode(absl::UnavailableError("x")), 3);
  EXPECT_EQ(ExitCode(absl::AlreadyExistsError("x")), 3);
  EXPECT_EQ(ExitCode(absl::CancelledError("x")), 3);
  EXPECT_EQ(ExitCode(absl::DeadlineExceededError("x")), 3);
}

TEST(ResolveServerAddress, FlagThenVarscopeServerThenTfConfigThenDefault) {
  const Environment all = EnvWith(
      {{"VARSCOPE_SERVER", "env:1"},
       {"TF_CONFIG", R"({"cluster": {"ps": ["ps0:2222", "ps1:2222"]}})"}});
  EXPECT_EQ(*ResolveServerAddress("flag:1", all), "flag:1");
  EXPECT_EQ(*ResolveServerAddress(std::nullopt, all), "env:1");
  EXPECT_EQ(*ResolveServerAddress(
                std::nullopt,
                EnvWith({{"TF_CONFIG",
                          R"({"cluster": {"ps": ["ps0:2222", "ps1:2222"],
                              "worker": ["w:1"]}, "task": {"type": "worker",
                              "index": 0}})"}})),
            "ps0:2222,ps1:2222");
  EXPECT_EQ(*ResolveServerAddress(std::nullopt, EnvWith({})), "127.0.0.1:7070");
  EXPECT_EQ(
      *ResolveServerAddress(
          std::nullopt,
          EnvWith({{"TF_CONFIG", R"({"cluster": {"worker": ["w:1"]}})"}})),
      "127.0.0.1:7070");
}

TEST(ResolveServerAddress, MalformedTfConfigIsInvalidArgument) {
  for (const char* config :
       {"{not json", "[1, 2]", R"({"cluster": {"ps": "ps0:2222"}})",
        R"({"cluster": {"ps": [2222]}})",
        R"({"cluster": {"ps": ["ps0:2222", 2222]}})"}) {
    SCOPED_TRACE(config);
    EXPECT_EQ(
        ResolveServerAddress(std::nullopt, EnvWith({{"TF_CONFIG", config}}))
            .status()
            .code(),
        absl::StatusCode::kInvalidArgument);
  }
}

class CliCommandTest : public CliTest {
 protected:
  void SetUp() override { Populate(); }
};

TEST_F(CliCommandTest, ServerComesFromVarscopeServerOrTfConfig) {
  CliResult r =
      RunCli({"ls", "--names"}, "", {{"VARSCOPE_SERVER", server_.address()}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "global_step\nmodel/\nopt/\n");
  r = RunCli({"ls", "--names"}, "",
             {{"TF_CONFIG", absl::StrCat(R"({"cluster": {"ps": [")",
                                         server_.address(), R"("]}})")}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "global_step\nmodel/\nopt/\n");
  r = RunCli({"ls"}, "", {{"TF_CONFIG", "{oops"}});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "varscope ls: INVALID_ARGUMENT: TF_CONFIG is not a JSON object; "
            "pass --server or fix TF_CONFIG\n");
}

TEST_F(CliCommandTest, SmallPagesStillListEverything) {
  const CliResult r = Run({"--page-size", "2", "ls", "-r", "--names"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "global_step\nmodel/dense/bias\nmodel/dense/kernel\n"
            "model/emb/part_0\nmodel/emb/part_1\nmodel/my_scope/weights\n"
            "opt/model/dense/kernel/Adam\n");
  EXPECT_EQ(Run({"--page-size", "1", "ls", "--depth", "2", "--names"}).out,
            "global_step\nmodel/\nmodel/dense/\nmodel/emb/\nmodel/my_scope/\n"
            "opt/\nopt/model/\n");
}

TEST(Cli, EveryCommandExitsThreeWhenTheServerIsDown) {
  ::varscope::testing::TempDir dir;
  std::string address;
  {
    ::varscope::testing::TestServer server;
    address = server.address();
  }
  const std::vector<std::vector<std::string>> commands = {
      {"ls"},
      {"tree"},
      {"show", "x"},
      {"find", "*"},
      {"du"},
      {"diagnose", "x"},
      {"get", "x"},
      {"set", "x", "--value", "1"},
      {"rm", "x"},
      {"mv", "x", "y"},
      {"export", "-o", dir.path() + "/x.npz"},
      {"stats"},
      {"health"},
      {"checkpoint", dir.path() + "/checkpoint"},
      {"backup", dir.path() + "/backups"}};
  for (std::vector<std::string> args : commands) {
    SCOPED_TRACE(args[0]);
    args.insert(args.begin(), {"--server", address, "--timeout", "120"});
    const CliResult r = RunCli(args);
    EXPECT_EQ(r.code, 3);
    EXPECT_THAT(r.err, StartsWith(absl::StrCat("varscope ", args[4],
                                               ": UNAVAILABLE: ")));
  }
}

TEST(Cli, UsageErrorsExitTwo) {
  const std::vector<std::vector<std::string>> usage_errors = {
      {},
      {"frobnicate"},
      {"show"},
      {"ls", "--no-such-option"},
      {"--timeout", "-1", "ls"},
      {"--page-size", "0", "ls"},
      {"ls", "--depth", "0"},
      {"export", "model"},
      {"mv", "a"},
      {"stats", "--interval", "soon"},
  };
  for (const std::vector<std::string>& args : usage_errors) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    const CliResult r = RunCli(args);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("Run with --help for more information."));
  }
}

TEST_F(CliCommandTest, FilesTheCommandLineNamesThatCannotBeReadAreUsageErrors) {
  ::varscope::testing::TempDir dir;
  const std::string missing = dir.path() + "/missing";
  const std::string no_such = ": No such file or directory\n";
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--token-file", missing, "ls"},
       absl::StrCat("varscope ls: INVALID_ARGUMENT: Cannot read the token "
                    "file ",
                    missing, "\n")},
      {{"--tls-ca", missing, "ls"},
       absl::StrCat("varscope ls: INVALID_ARGUMENT: Cannot read the TLS CA "
                    "file ",
                    missing, "\n")},
      {{"import", missing},
       absl::StrCat("varscope import: INVALID_ARGUMENT: Cannot open ", missing,
                    no_such)},
      {{"set", "global_step", "--from-npy", missing},
       absl::StrCat("varscope set: INVALID_ARGUMENT: Cannot open ", missing,
                    no_such)},
      {{"export", "-o", missing + "/x.npz"},
       absl::StrCat("varscope export: INVALID_ARGUMENT: Cannot create ",
                    missing, "/x.npz.partial", no_such)},
      {{"restore", missing, dir.path() + "/new"},
       absl::StrCat("varscope restore: INVALID_ARGUMENT: ", missing,
                    " is not a directory (give a backup directory or a "
                    "checkpoint)\n")},
      {{"restore", "--list", missing},
       absl::StrCat("varscope restore: INVALID_ARGUMENT: ", missing,
                    " is not a directory (give a backup directory or a "
                    "checkpoint)\n")},
  };
  for (const auto& [args, err] : cases) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    const CliResult r = Run(args);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, err);
  }
  // The environment's CA file alike.
  const CliResult r = RunCli({"--server", server_.address(), "ls"}, "",
                             {{"VARSCOPE_TLS_CA", missing}});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, absl::StrCat("varscope ls: INVALID_ARGUMENT: Cannot read "
                                "the TLS CA file ",
                                missing, "\n"));
  // An import's own sidecar is optional; a named one is not.
  ASSERT_EQ(Run({"export", "model/dense", "-o", dir.path() + "/d.npz"}).code,
            0);
  EXPECT_EQ(Run({"import", dir.path() + "/d.npz", "--into", "copy",
                 "--metadata", missing})
                .err,
            absl::StrCat("varscope import: INVALID_ARGUMENT: Cannot open ",
                         missing, no_such));
  std::filesystem::remove(dir.path() + "/d.npz.json");
  EXPECT_EQ(Run({"import", dir.path() + "/d.npz", "--into", "copy"}).code, 0);
}

TEST(Cli, HelpWorksOnEveryCommandAndExitsZero) {
  CliResult r = RunCli({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, StartsWith("varscope: browse scopes"));
  for (const char* command : kCommands) {
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\n  ", command, " ")));
  }
  EXPECT_THAT(r.out, HasSubstr("Exit codes: 0 ok, 1 not found, 2 usage"));
  for (const char* command : kCommands) {
    SCOPED_TRACE(command);
    r = RunCli({command, "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("Usage: varscope ", command)));
    EXPECT_EQ(r.err, "");
  }
}

TEST_F(CliCommandTest, StatsReportsCountsAndCallRates) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client_->Read("global_step").ok());
  CliResult r = Run({"--json", "stats", "--interval", "0.2"});
  EXPECT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["server"], server_.address());
  EXPECT_EQ(j["version"], std::string(Version()));
  EXPECT_EQ(j["commit"], std::string(GitCommit()));
  EXPECT_EQ(j["variables"], 7);
  EXPECT_EQ(j["bytes"], 136);
  EXPECT_EQ(j["interval_seconds"], 0.2);
  EXPECT_EQ(j["calls"]["reads"]["total"], 3);
  EXPECT_EQ(j["calls"]["reads"]["per_second"], 0.0);
  EXPECT_GT(j["calls"]["reads"]["per_second_since_start"], 0.0);
  EXPECT_EQ(j["calls"]["gets"]["total"], 6);
  EXPECT_EQ(j["calls"]["updates"]["total"], 7);  // one assign per part

  r = Run({"stats", "--interval", "0"});
  EXPECT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_EQ(lines.size(), 9u);
  EXPECT_EQ(lines[0], absl::StrCat("server     ", server_.address()));
  EXPECT_EQ(lines[1], absl::StrCat("version    ", Version(), " (commit ",
                                   GitCommit(), ")"));
  EXPECT_THAT(lines[2], MatchesRegex("started    .*Z \\(up [0-9]+s\\)"));
  EXPECT_EQ(lines[3], "variables  7");
  EXPECT_EQ(lines[4], "bytes      136 B (136)");
  EXPECT_THAT(lines[5], MatchesRegex("reads      3 total, .*/s since start"));
  EXPECT_THAT(lines[6], StartsWith("updates    7 total, "));
  EXPECT_THAT(lines[7], StartsWith("gets       6 total, "));
}

TEST(Cli, VersionPrintsVersionAndCommit) {
  CliResult r = RunCli({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, absl::StrCat("varscope ", Version(), " (commit ",
                                GitCommit(), ")\n"));
  EXPECT_EQ(r.err, "");
}

TEST(Cli, StatsOfAClusterShowsEveryShardAndTheTotals) {
  ::varscope::testing::TestServer s0(
      ::varscope::testing::TestShardOptions(0, 2));
  ::varscope::testing::TestServer s1(
      ::varscope::testing::TestShardOptions(1, 2));
  const std::string cluster = absl::StrCat(s0.address(), ",", s1.address());
  std::shared_ptr<Client> client = Client::Connect(cluster);
  for (int i = 0; i < 6; ++i) {
    v1::GetVariableRequest request;
    request.set_name(absl::StrCat("v", i));
    request.set_mode(v1::CREATE);
    request.set_dtype(v1::DT_FLOAT);
    request.mutable_shape()->add_dims(2);
    ASSERT_TRUE(client->GetVariable(request).ok());
  }
  CliResult r =
      RunCli({"--server", cluster, "--json", "stats", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  ASSERT_EQ(j["shards"].size(), 2u);
  EXPECT_EQ(j["shards"][0]["server"], s0.address());
  EXPECT_EQ(j["shards"][1]["server"], s1.address());
  const int64_t on0 = j["shards"][0]["variables"];
  const int64_t on1 = j["shards"][1]["variables"];
  EXPECT_GT(on0, 0);  // six names spread over both shards
  EXPECT_GT(on1, 0);
  EXPECT_EQ(on0 + on1, 6);
  EXPECT_EQ(j["shards"][0]["calls"]["gets"]["total"], on0);
  EXPECT_EQ(j["total"]["server"], "total (2 shards)");
  EXPECT_EQ(j["total"]["variables"], 6);
  EXPECT_EQ(j["total"]["bytes"], 48);
  EXPECT_EQ(j["total"]["calls"]["gets"]["total"], 6);
  EXPECT_EQ(j["total"]["version"], std::string(Version()));

  r = RunCli({"--server", cluster, "stats", "--interval", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_EQ(lines.size(), 27u);  // 3 blocks of 8 lines, 2 blank, the end
  EXPECT_EQ(lines[0], absl::StrCat("server     ", s0.address()));
  EXPECT_EQ(lines[9], absl::StrCat("server     ", s1.address()));
  EXPECT_EQ(lines[18], "server     total (2 shards)");
  EXPECT_EQ(lines[21], "variables  6");
  EXPECT_EQ(lines[22], "bytes      48 B (48)");

  // A shard that is down is named.
  std::string down;
  {
    ::varscope::testing::TestServer stopped;
    down = stopped.address();
  }
  r = RunCli({"--server", absl::StrCat(s0.address(), ",", down), "--timeout",
              "5", "stats", "--interval", "0"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, StartsWith(absl::StrCat("varscope stats: UNAVAILABLE: ",
                                             "Shard ", down, ": ")));
}

TEST_F(CliCommandTest, TopListsTheVariablesBeingUpdatedBusiestFirst) {
  std::atomic<bool> done{false};
  std::atomic<int64_t> updates{0};
  // Updates run from before top's first sample until after its last one,
  // so every interval holds some.
  std::thread updater([&] {
    std::shared_ptr<Client> client = server_.NewClient();
    while (!done.load()) {
      ASSERT_TRUE(client
                      ->AssignAdd("global_step", Tensor::FromVector<int64_t>(
                                                     v1::DT_INT64, {}, {1}))
                      .ok());
      updates.fetch_add(1);
    }
  });
  while (updates.load() == 0) std::this_thread::yield();
  CliResult r = Run({"--json", "top", "--interval", "0.3", "--count", "2"});
  done = true;
  updater.join();
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  int64_t seen = 0;
  for (const std::string& line : lines) {
    const Json j = Json::parse(line);
    EXPECT_EQ(j["interval_seconds"], 0.3);
    EXPECT_EQ(j["variables"], 7);
    EXPECT_EQ(j["changed"], 1);
    ASSERT_EQ(j["top"].size(), 1u);
    EXPECT_EQ(j["top"][0]["name"], "global_step");
    EXPECT_GT(j["top"][0]["updates"], 0);
    EXPECT_EQ(j["top"][0]["per_second"],
              static_cast<double>(j["top"][0]["updates"]) / 0.3);
    seen += static_cast<int64_t>(j["top"][0]["updates"]);
  }
  EXPECT_LE(seen, updates.load());

  // Nothing updated: the header alone.
  r = Run({"top", "model", "--interval", "0.1", "--count", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              MatchesRegex("[0-9T:.-]+Z  0 of 5 variables updated in the "
                           "last 0.1s\n"));
  r = Run({"top", "no/such", "--count", "1"});
  EXPECT_EQ(r.code, 1);
}

TEST_F(CliCommandTest, HealthPrintsServingAndExitsZero) {
  CliResult r = Run({"health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = Run({"health", "--json"});
  EXPECT_EQ(Json::parse(r.out),
            (Json{{"server", server_.address()}, {"status", "SERVING"}}));
}

TEST(Cli, HealthOfAClusterChecksEveryShard) {
  ::varscope::testing::TestServer a, b;
  std::string down;
  {
    ::varscope::testing::TestServer stopped;
    down = stopped.address();
  }
  const std::string cluster = absl::StrCat(a.address(), ",", b.address());
  CliResult r = RunCli({"--server", cluster, "health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            absl::StrCat(a.address(), " SERVING\n", b.address(), " SERVING\n"));
  r = RunCli({"--server", absl::StrCat(cluster, ",", down), "--timeout", "120",
              "health"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.out,
              StartsWith(absl::StrCat(a.address(), " SERVING\n", b.address(),
                                      " SERVING\n", down, " UNAVAILABLE: ")));
  EXPECT_EQ(r.err, absl::StrCat("varscope health: UNAVAILABLE: 1 of 3 shards "
                                "is not serving: ",
                                down, " (UNAVAILABLE)\n"));
  r = RunCli({"--server", absl::StrCat(down, ",", cluster), "--timeout", "120",
              "--json", "health"});
  EXPECT_EQ(r.code, 3);
  const std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  const Json first = Json::parse(lines[0]);
  EXPECT_EQ(first["server"], down);
  EXPECT_EQ(first["status"], "UNAVAILABLE");
  EXPECT_TRUE(first["error"].is_string());
  EXPECT_EQ(Json::parse(lines[2]),
            (Json{{"server", b.address()}, {"status", "SERVING"}}));
}

TEST(Cli, AShardListInAnotherOrderIsRefused) {
  ::varscope::testing::TestServer s0(
      ::varscope::testing::TestShardOptions(0, 2));
  ::varscope::testing::TestServer s1(
      ::varscope::testing::TestShardOptions(1, 2));
  const std::string order = ::varscope::testing::TestShardList(2);
  CliResult r =
      RunCli({"--server", absl::StrCat(s1.address(), ",", s0.address()), "ls"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            absl::StrCat("varscope ls: FAILED_PRECONDITION: Shard list "
                         "mismatch: ",
                         s1.address(),
                         " is shard 1 of 2 of cluster "
                         "test-cluster (shards ",
                         order,
                         "), but this client lists it as shard 0 of 2. Give "
                         "every worker the shards in the cluster's order: ",
                         order, "\n"));
  r = RunCli({"--server", absl::StrCat(s0.address(), ",", s1.address()), "ls"});
  EXPECT_EQ(r.code, 0) << r.err;
  // One shard alone, whatever its place.
  EXPECT_EQ(RunCli({"--server", s1.address(), "ls"}).code, 0);
}

// The completions bash offers for `words` (the last one being completed).
std::string Complete(const std::vector<std::string>& words) {
  std::string array;
  for (const std::string& w : words) absl::StrAppend(&array, " '", w, "'");
  return RunProgram(
      {"/bin/bash", "-c",
       absl::StrCat("source '", VARSCOPE_COMPLETION_SCRIPT, "'; COMP_WORDS=(",
                    array, "); COMP_CWORD=", words.size() - 1,
                    "; _varscope; printf '%s\\n' \"${COMPREPLY[@]}\"")});
}

TEST_F(CliCommandTest, BashCompletionOffersCommandsOptionsAndNames) {
  EXPECT_EQ(Complete({VARSCOPE_BIN, "s"}), "show\nset\nstats\n");
  EXPECT_EQ(Complete({VARSCOPE_BIN, "rm", "--d"}), "--dry-run\n");
  EXPECT_EQ(Complete({VARSCOPE_BIN, "re"}), "recover\nrestore\n");
  EXPECT_EQ(Complete({VARSCOPE_BIN, "restore", "--l"}), "--list\n");
  EXPECT_EQ(Complete({VARSCOPE_BIN, "diagnose", "x", "--dtype", "bf"}),
            "bfloat16\n");
  EXPECT_EQ(
      Complete({VARSCOPE_BIN, "--server", server_.address(), "show", "mo"}),
      "model/\n");
  EXPECT_EQ(Complete({VARSCOPE_BIN, "--server", server_.address(), "show",
                      "model/dense/"}),
            "model/dense/bias\nmodel/dense/kernel\n");
}

}  // namespace
}  // namespace varscope::cli::testing
