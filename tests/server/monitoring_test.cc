// A real varscoped process as an operator sees it: /metrics after known
// traffic, its log lines (text and JSON), --version.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/status_matchers.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_server.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;
using ::varscope::testing::ChildProcess;
using ::varscope::testing::CreateRequest;
using ::varscope::testing::PollUntil;
using ::varscope::testing::ServerProcess;
using ::varscope::testing::TempDir;
using ::varscope::testing::VarscopedPath;
using ::varscope::testing::WholeUpdate;
using Json = nlohmann::json;

// The metrics port of a serving line ("..., metrics on 127.0.0.1:PORT)").
int MetricsPort(const std::string& serving_line) {
  const size_t at = serving_line.find("metrics on 127.0.0.1:");
  int port = 0;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(
          serving_line.substr(at + 21, serving_line.size() - at - 22), &port)) {
    ADD_FAILURE() << "no metrics port in: " << serving_line;
  }
  return port;
}

// Every sample of an exposition, by series ("name{labels}").
std::map<std::string, double> Scrape(int port) {
  httplib::Client http("127.0.0.1", port);
  httplib::Result result = http.Get("/metrics");
  std::map<std::string, double> samples;
  if (!result) {
    ADD_FAILURE() << "GET /metrics failed";
    return samples;
  }
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  for (absl::string_view line : absl::StrSplit(result->body, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &value)) << line;
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

std::string Calls(const std::string& method, const std::string& code) {
  return absl::StrCat("varscope_rpc_requests_total{method=\"", method,
                      "\",code=\"", code, "\"}");
}

v1::GetVariableRequest CreateFloats(const std::string& name, int64_t n) {
  return CreateRequest(name, v1::DT_FLOAT, {n}, v1::Initializer::ZEROS);
}

TEST(Metrics, CountEveryCallByMethodAndCode) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(
      auto server,
      ServerProcess::Start(dir.path(), {"--metrics-listen=127.0.0.1:0"}));
  const int port = MetricsPort(server->serving_line());
  std::map<std::string, double> before = Scrape(port);
  EXPECT_EQ(before.count(Calls("VariableService/Read", "OK")), 0u);
  EXPECT_EQ(before["varscope_variables{kind=\"dense\"}"], 0);

  std::shared_ptr<Client> client = Client::Connect(server->address());
  VS_ASSERT_OK(client->GetVariable(CreateFloats("m/w", 4)).status());
  for (int i = 0; i < 3; ++i) VS_ASSERT_OK(client->Read("m/w").status());
  EXPECT_THAT(client->Read("m/missing").status(),
              ::varscope::testing::StatusIs(absl::StatusCode::kNotFound));
  VS_ASSERT_OK(client
                   ->Assign("m/w", Tensor::FromVector<float>(v1::DT_FLOAT, {4},
                                                             {1, 2, 3, 4}))
                   .status());
  v1::BatchUpdateRequest batch;
  *batch.add_updates() = WholeUpdate(
      "m/w", Tensor::FromVector<float>(v1::DT_FLOAT, {4}, {1, 1, 1, 1}),
      /*add=*/true);
  batch.mutable_id()->set_client_id("operator-test");
  batch.mutable_id()->set_sequence(1);
  VS_ASSERT_OK(client->BatchUpdate(batch).status());
  VS_ASSERT_OK_AND_ASSIGN(v1::BatchUpdateResponse repeat,
                          client->BatchUpdate(batch));
  EXPECT_TRUE(repeat.duplicate());
  EXPECT_EQ(Scrape(port)["varscope_intents_kept"], 0);
  // The keeper's part of a step over shards 0 and 1 keeps the other part.
  batch.mutable_id()->set_sequence(2);
  batch.add_span_shards(0);
  batch.add_span_shards(1);
  v1::BatchUpdateRequest other = batch;
  other.clear_updates();
  v1::IntentPart* part = batch.add_intent();
  part->set_shard(1);
  other.SerializeToString(part->mutable_batch_update());
  // Sent as a cluster's client sends it to the keeper.
  const auto stub = v1::VariableService::NewStub(grpc::CreateChannel(
      server->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::BatchUpdateResponse kept;
  ASSERT_TRUE(stub->BatchUpdate(&context, batch, &kept).ok());

  std::map<std::string, double> after = Scrape(port);
  EXPECT_EQ(after[Calls("VariableService/GetVariable", "OK")], 1);
  EXPECT_EQ(after[Calls("VariableService/Read", "OK")], 3);
  EXPECT_EQ(after[Calls("VariableService/Read", "NOT_FOUND")], 1);
  EXPECT_EQ(after[Calls("VariableService/Assign", "OK")], 1);
  EXPECT_EQ(after[Calls("VariableService/BatchUpdate", "OK")], 3);
  EXPECT_EQ(after.count(Calls("VariableService/Stat", "OK")), 0u);
  EXPECT_EQ(after["varscope_rpc_duration_seconds_count{method=\""
                  "VariableService/Read\"}"],
            4);
  EXPECT_EQ(after["varscope_rpc_duration_seconds_bucket{method=\""
                  "VariableService/Read\",le=\"+Inf\"}"],
            4);
  EXPECT_EQ(after["varscope_updates_applied_total"], 3);
  EXPECT_EQ(after["varscope_duplicate_updates_skipped_total"], 1);
  EXPECT_EQ(after["varscope_intents_kept"], 1);
  EXPECT_EQ(after["varscope_variables{kind=\"dense\"}"], 1);
  EXPECT_EQ(after["varscope_variable_bytes{kind=\"dense\",where=\"memory\"}"],
            16);
  // Each Read request carries the name; each reply carries 16 bytes of
  // values.
  EXPECT_GT(after["varscope_rpc_received_bytes_total"],
            before["varscope_rpc_received_bytes_total"] + 3 * 5);
  EXPECT_GT(after["varscope_rpc_sent_bytes_total"],
            before["varscope_rpc_sent_bytes_total"] + 3 * 16);
  EXPECT_GT(after["varscope_wal_written_bytes_total"], 16);
  EXPECT_EQ(after.count("varscope_last_flush_age_seconds"), 0u);  // wal mode
  EXPECT_GT(after["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GT(after["process_open_fds"], 3);
  EXPECT_GT(after["process_threads"], 1);
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_GT(after["process_start_time_seconds"], now - 3600);
  EXPECT_LE(after["process_start_time_seconds"], now);
}

TEST(Metrics, EmbeddingVariablesAndTheirRowsInMemory) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(
      auto server,
      ServerProcess::Start(dir.path(), {"--metrics-listen=127.0.0.1:0"}));
  const int port = MetricsPort(server->serving_line());
  std::shared_ptr<Client> client = Client::Connect(server->address());
  VS_ASSERT_OK(client->GetVariable(CreateFloats("m/w", 4)).status());
  v1::GetEmbeddingVariableRequest create;
  create.set_name("m/emb");
  create.set_mode(v1::CREATE);
  create.set_embedding_dim(4);
  VS_ASSERT_OK(client->GetEmbeddingVariable(create).status());
  std::map<std::string, double> scraped = Scrape(port);
  EXPECT_EQ(scraped["varscope_variables{kind=\"dense\"}"], 1);
  EXPECT_EQ(scraped["varscope_variables{kind=\"embedding\"}"], 1);
  EXPECT_EQ(scraped["varscope_variable_bytes{kind=\"dense\",where=\"memory\"}"],
            16);

  VS_ASSERT_OK(client
                   ->EmbeddingImport(
                       "m/emb",
                       Tensor::FromVector<int64_t>(v1::DT_INT64, {2}, {7, -3}),
                       Tensor::FromVector<float>(v1::DT_FLOAT, {2, 4},
                                                 {1, 2, 3, 4, 5, 6, 7, 8}))
                   .status());
  VS_ASSERT_OK_AND_ASSIGN(v1::EmbeddingStats stats,
                          client->EmbeddingStat("m/emb"));
  EXPECT_EQ(stats.memory_keys(), 2);
  scraped = Scrape(port);
  EXPECT_GT(stats.memory_bytes(), 0);
  EXPECT_EQ(
      scraped["varscope_variable_bytes{kind=\"embedding\",where=\"memory\"}"],
      stats.memory_bytes());
}

TEST(Metrics, IntervalModeReportsHowOldTheStoreIs) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(
      auto server,
      ServerProcess::Start(dir.path(), {"--metrics-listen=127.0.0.1:0",
                                        "--durability=interval=50ms"}));
  const int port = MetricsPort(server->serving_line());
  std::shared_ptr<Client> client = Client::Connect(server->address());
  VS_ASSERT_OK(client->GetVariable(CreateFloats("x", 2)).status());
  // The flusher writes the change within an interval or so: wait for it.
  std::map<std::string, double> samples;
  EXPECT_TRUE(PollUntil(
      [&] {
        samples = Scrape(port);
        return samples["varscope_flushes_total"] >= 1;
      },
      absl::Minutes(2)));
  EXPECT_GE(samples["varscope_flushes_total"], 1);
  EXPECT_EQ(samples["varscope_flush_failures_total"], 0);
  EXPECT_GE(samples["varscope_flush_duration_seconds_count"], 1);
  ASSERT_EQ(samples.count("varscope_last_flush_age_seconds"), 1u);
  EXPECT_GE(samples["varscope_last_flush_age_seconds"], 0);
}

TEST(Metrics, UnusableAddressIsRefused) {
  TempDir dir;
  for (const char* address : {"nonsense", "127.0.0.1:http"}) {
    VS_ASSERT_OK_AND_ASSIGN(
        auto child,
        ChildProcess::Start(
            {VarscopedPath(), "--listen=127.0.0.1:0",
             absl::StrCat("--data-dir=", dir.path()), "--log-level=error",
             absl::StrCat("--metrics-listen=", address)},
            /*capture_stderr=*/true));
    VS_ASSERT_OK_AND_ASSIGN(std::string line, child->ReadLine());
    EXPECT_EQ(line, absl::StrCat("varscoped: INVALID_ARGUMENT: "
                                 "--metrics-listen needs HOST:PORT, not '",
                                 address, "'"));
    const int status = child->Wait();
    EXPECT_EQ(WEXITSTATUS(status), 1);
  }
}

// The lines of a varscoped run with `args` (stdout and stderr), making the
// calls `traffic` does once it serves, then stopped with SIGTERM.
std::vector<std::string> RunAndStop(
    const std::string& data_dir, std::vector<std::string> args,
    const std::function<void(const std::string& address)>& traffic) {
  args.insert(args.begin(), {VarscopedPath(), "--listen=127.0.0.1:0",
                             absl::StrCat("--data-dir=", data_dir)});
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(args, /*capture_stderr=*/true);
  EXPECT_THAT(child.status(), ::varscope::testing::IsOk());
  if (!child.ok()) return {};
  std::vector<std::string> lines;
  for (;;) {
    absl::StatusOr<std::string> line = (*child)->ReadLine();
    if (!line.ok()) break;
    lines.push_back(*line);
    if (absl::StartsWith(*line, "varscoped serving on 127.0.0.1:")) {
      const size_t colon = line->find(':');
      traffic(line->substr(21, line->find(' ', colon) - 21));
      (*child)->Kill(SIGTERM);
    }
  }
  EXPECT_EQ((*child)->Wait(), 0);
  return lines;
}

TEST(Log, JsonEventsFromStartToStop) {
  TempDir dir;
  const std::string data = absl::StrCat(dir.path(), "/data");
  const std::vector<std::string> lines = RunAndStop(
      data, {"--log-format=json", "--slow-call-ms=0"},
      [](const std::string& address) {
        EXPECT_THAT(Client::Connect(address)->Read("a/b").status(),
                    ::varscope::testing::StatusIs(absl::StatusCode::kNotFound));
      });
  std::vector<Json> events;
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "varscoped serving on")) continue;
    events.push_back(Json::parse(line));  // every other line is an event
  }
  std::vector<std::string> names;
  for (const Json& e : events) names.push_back(e["event"]);
  EXPECT_THAT(names, ElementsAre("start", "recovery", "serving", "slow_call",
                                 "shutdown", "stopped"));
  const Json& start = events[0];
  EXPECT_THAT(std::string(start["time"]),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{15}Z"));
  EXPECT_EQ(start["level"], "info");
  EXPECT_EQ(start["version"], std::string(Version()));
  EXPECT_EQ(start["commit"], std::string(GitCommit()));
  EXPECT_EQ(start["data_dir"], data);
  EXPECT_EQ(start["durability"], "wal");
  EXPECT_EQ(start["flags"],
            absl::StrCat("--listen=127.0.0.1:0 --data-dir=", data,
                         " --log-format=json --slow-call-ms=0"));
  EXPECT_EQ(events[1]["variables"], 0);
  EXPECT_EQ(events[1]["wal_replayed_bytes"], 0);
  const Json& slow = events[3];
  EXPECT_EQ(slow["level"], "warning");
  EXPECT_EQ(slow["method"], "VariableService/Read");
  EXPECT_EQ(slow["name"], "a/b");
  EXPECT_EQ(slow["code"], "NOT_FOUND");
  EXPECT_THAT(std::string(slow["peer"]), StartsWith("ipv4:127.0.0.1:"));
  EXPECT_GE(slow["duration_ms"], 0.0);
  EXPECT_EQ(events[4]["signal"], "SIGTERM");
}

TEST(Log, TextRecoverySummaryAfterAKill) {
  TempDir dir;
  {
    VS_ASSERT_OK_AND_ASSIGN(auto server, ServerProcess::Start(dir.path()));
    VS_ASSERT_OK(Client::Connect(server->address())
                     ->GetVariable(CreateFloats("r/v", 4))
                     .status());
    server->process().Kill(SIGKILL);
    server->process().Wait();
  }
  const std::vector<std::string> lines = RunAndStop(
      dir.path(), {"--slow-call-ms=100000"}, [](const std::string&) {});
  ASSERT_GE(lines.size(), 3u);
  EXPECT_THAT(lines[0],
              MatchesRegex(absl::StrCat(
                  "[0-9T:.-]+Z INFO start version=", Version(), " commit=",
                  GitCommit(), " listen=127.0.0.1:0 data_dir=", dir.path(),
                  " durability=wal metrics_listen=\"\" flags=\"[^\"]*\"")));
  // The killed server's log holds the variable: replayed at the start.
  EXPECT_THAT(lines[1], MatchesRegex("[0-9T:.-]+Z INFO recovery variables=1 "
                                     "bytes=16 seconds=[0-9.e-]+ "
                                     "wal_replayed_bytes=[1-9][0-9]*"));
  EXPECT_THAT(lines.back(), MatchesRegex("[0-9T:.-]+Z INFO stopped "
                                         "seconds=[0-9.e-]+"));
}

TEST(Log, LevelHidesWhatIsBelowIt) {
  TempDir dir;
  const std::vector<std::string> lines =
      RunAndStop(dir.path(), {"--log-level=warning", "--slow-call-ms=0"},
                 [](const std::string& address) {
                   VS_EXPECT_OK(Client::Connect(address)->GetServerInfo());
                 });
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], StartsWith("varscoped serving on"));
  EXPECT_THAT(lines[1],
              AllOf(HasSubstr(" WARNING slow_call "),
                    HasSubstr(" method=VariableService/GetServerInfo name=\"\""
                              " peer=ipv4:127.0.0.1:")));
}

TEST(Log, BadLevelOrFormatIsAUsageError) {
  TempDir dir;
  for (const auto& [flag, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"--log-level=loud",
            "--log-level: Unknown log level 'loud'; use debug, info, warning "
            "or error"},
           {"--log-format=xml",
            "--log-format: Unknown log format 'xml'; use text or json"}}) {
    VS_ASSERT_OK_AND_ASSIGN(auto child,
                            ChildProcess::Start({VarscopedPath(), flag},
                                                /*capture_stderr=*/true));
    VS_ASSERT_OK_AND_ASSIGN(std::string line, child->ReadLine());
    EXPECT_EQ(line, message);
    EXPECT_EQ(WEXITSTATUS(child->Wait()), 2);
  }
}

TEST(Version, VarscopedPrintsVersionAndCommit) {
  VS_ASSERT_OK_AND_ASSIGN(auto child,
                          ChildProcess::Start({VarscopedPath(), "--version"}));
  VS_ASSERT_OK_AND_ASSIGN(std::string line, child->ReadLine());
  EXPECT_EQ(line, absl::StrCat("varscoped ", Version(), " (commit ",
                               GitCommit(), ")"));
  EXPECT_THAT(child->ReadLine().status(),
              ::varscope::testing::StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(child->Wait(), 0);
  EXPECT_THAT(std::string(Version()), MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
  EXPECT_THAT(std::string(GitCommit()),
              MatchesRegex("[0-9a-f]{12}(-dirty)?|unknown"));
}

TEST(Version, GetServerInfoReportsIt) {
  TempDir dir;
  VS_ASSERT_OK_AND_ASSIGN(auto server, ServerProcess::Start(dir.path()));
  VS_ASSERT_OK_AND_ASSIGN(v1::ServerInfo info,
                          Client::Connect(server->address())->GetServerInfo());
  EXPECT_EQ(info.version(), Version());
  EXPECT_EQ(info.commit(), GitCommit());
}

}  // namespace
}  // namespace varscope
