// The metrics registry's exposition text and the log's lines, exactly.
#include "server/base/metrics.h"

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/base/log.h"

namespace varscope::server {
namespace {

using ::testing::ElementsAre;
using ::varscope::testing::StatusIs;

TEST(Metrics, ExpositionIsTheTextFormatExactly) {
  metrics::Counter calls;
  calls.Add();
  calls.Add(2);
  metrics::Histogram seconds({0.001, 0.5, 2});
  // Binary fractions: their sum is exact.
  seconds.Observe(0.000244140625);
  seconds.Observe(0.5);  // an observation on a bound is in its bucket
  seconds.Observe(0.5);
  seconds.Observe(3);
  metrics::Registry registry;
  registry.AddCounter("calls_total", "All calls.", calls);
  registry.Add("held_bytes", metrics::Type::kGauge,
               "Help with \\ and\nnewline.", [](metrics::SeriesWriter& w) {
                 w.Value({{"kind", "dense"}, {"where", "memory"}}, 1536);
                 w.Value({{"kind", "a\"b\\c\nd"}, {"where", "disk"}}, 0.25);
               });
  registry.Add("never_written", metrics::Type::kGauge, "No series.",
               [](metrics::SeriesWriter&) {});
  registry.AddHistogram("latency_seconds", "Latency.", seconds);
  registry.AddValue("big", metrics::Type::kGauge, "Large and small.",
                    [] { return 1e21; });
  EXPECT_EQ(registry.Exposition(),
            "# HELP calls_total All calls.\n"
            "# TYPE calls_total counter\n"
            "calls_total 3\n"
            "# HELP held_bytes Help with \\\\ and\\nnewline.\n"
            "# TYPE held_bytes gauge\n"
            "held_bytes{kind=\"dense\",where=\"memory\"} 1536\n"
            "held_bytes{kind=\"a\\\"b\\\\c\\nd\",where=\"disk\"} 0.25\n"
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{le=\"0.001\"} 1\n"
            "latency_seconds_bucket{le=\"0.5\"} 3\n"
            "latency_seconds_bucket{le=\"2\"} 3\n"
            "latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "latency_seconds_sum 4.000244140625\n"
            "latency_seconds_count 4\n"
            "# HELP big Large and small.\n"
            "# TYPE big gauge\n"
            "big 1e+21\n");
  EXPECT_THAT(registry.Names(),
              ElementsAre("calls_total", "held_bytes", "never_written",
                          "latency_seconds", "big"));
}

TEST(Metrics, LabelledHistogramKeepsItsLabelsBeforeLe) {
  metrics::Histogram h({1});
  h.Observe(0.5);
  metrics::Registry registry;
  registry.Add("d_seconds", metrics::Type::kHistogram, "D.",
               [&h](metrics::SeriesWriter& w) {
                 w.Histogram({{"method", "A/B"}}, h.Read());
               });
  EXPECT_EQ(registry.Exposition(),
            "# HELP d_seconds D.\n"
            "# TYPE d_seconds histogram\n"
            "d_seconds_bucket{method=\"A/B\",le=\"1\"} 1\n"
            "d_seconds_bucket{method=\"A/B\",le=\"+Inf\"} 1\n"
            "d_seconds_sum{method=\"A/B\"} 0.5\n"
            "d_seconds_count{method=\"A/B\"} 1\n");
}

TEST(Metrics, NumbersAreShortestAndExact) {
  EXPECT_EQ(metrics::FormatNumber(0), "0");
  EXPECT_EQ(metrics::FormatNumber(12), "12");
  EXPECT_EQ(metrics::FormatNumber(-3.5), "-3.5");
  EXPECT_EQ(metrics::FormatNumber(0.0001), "0.0001");
  EXPECT_EQ(metrics::FormatNumber(0.00001), "1e-05");
  EXPECT_EQ(metrics::FormatNumber(123456789012345), "123456789012345");
  EXPECT_EQ(metrics::FormatNumber(1e15), "1e+15");
  EXPECT_EQ(metrics::FormatNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(metrics::FormatNumber(1.0 / 0.0), "+Inf");
  EXPECT_EQ(metrics::FormatNumber(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(metrics::FormatNumber(0.0 / 0.0), "NaN");
}

TEST(Metrics, GaugeSetsAndAdds) {
  metrics::Gauge g;
  g.Set(5);
  g.Add(-2);
  EXPECT_EQ(g.value(), 3);
}

const absl::Time kTime =
    absl::FromCivil(absl::CivilSecond(2025, 6, 1, 12, 0, 0),
                    absl::UTCTimeZone()) +
    absl::Microseconds(123456);

TEST(Log, TextLineQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(log::FormatLine(log::Format::kText, kTime, log::Level::kWarning,
                            "slow_call",
                            {{"method", "VariableService/Read"},
                             {"name", "a/b"},
                             {"peer", "ipv4:127.0.0.1:5000"},
                             {"duration_ms", 12.5},
                             {"empty", ""},
                             {"spaced", "x y"},
                             {"quoted", "say \"hi\"\n"},
                             {"count", int64_t{-3}},
                             {"ok", true}}),
            "2025-06-01T12:00:00.123456Z WARNING slow_call "
            "method=VariableService/Read name=a/b peer=ipv4:127.0.0.1:5000 "
            "duration_ms=12.5 empty=\"\" spaced=\"x y\" "
            "quoted=\"say \\\"hi\\\"\\n\" count=-3 ok=true\n");
}

TEST(Log, JsonLineIsOneObject) {
  EXPECT_EQ(
      log::FormatLine(log::Format::kJson, kTime, log::Level::kInfo, "recovery",
                      {{"variables", 3},
                       {"seconds", 0.25},
                       {"dir", "/d\\x \"y\""},
                       {"control", std::string("\x01", 1)}}),
      "{\"time\":\"2025-06-01T12:00:00.123456Z\",\"level\":\"info\","
      "\"event\":\"recovery\",\"variables\":3,\"seconds\":0.25,"
      "\"dir\":\"/d\\\\x \\\"y\\\"\",\"control\":\"\\u0001\"}\n");
}

TEST(Log, LevelsAndFormatsParse) {
  EXPECT_EQ(*log::ParseLevel("debug"), log::Level::kDebug);
  EXPECT_EQ(*log::ParseLevel("error"), log::Level::kError);
  EXPECT_THAT(log::ParseLevel("verbose"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown log level 'verbose'; use debug, info, warning "
                       "or error"));
  EXPECT_EQ(*log::ParseFormat("json"), log::Format::kJson);
  EXPECT_THAT(log::ParseFormat("xml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown log format 'xml'; use text or json"));
}

TEST(Log, LevelFiltersEvents) {
  log::Configure(log::Level::kWarning, log::Format::kText);
  EXPECT_FALSE(log::Enabled(log::Level::kInfo));
  EXPECT_TRUE(log::Enabled(log::Level::kWarning));
  EXPECT_TRUE(log::Enabled(log::Level::kError));
  log::Configure(log::Level::kInfo, log::Format::kText);
  EXPECT_TRUE(log::Enabled(log::Level::kInfo));
  EXPECT_FALSE(log::Enabled(log::Level::kDebug));
}

}  // namespace
}  // namespace varscope::server
