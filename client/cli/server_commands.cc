#include "client/cli/server_commands.h"

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "common/transport.h"

namespace varscope::cli {
namespace {

using Json = nlohmann::json;

// grpc.health.v1.HealthCheckResponse.ServingStatus.
constexpr const char* kServingStatus[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                          "SERVICE_UNKNOWN"};
constexpr int kServing = 1;

// The `status` field (1) of a serialized HealthCheckResponse; 0 (UNKNOWN)
// when absent. INTERNAL if the bytes are not a message.
absl::StatusOr<int64_t> ServingStatus(const std::string& bytes) {
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes)) {
    return absl::InternalError("Unreadable grpc.health.v1 response");
  }
  int64_t status = 0;
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& f = fields.field(i);
    if (f.number() == 1 &&
        f.type() == google::protobuf::UnknownField::TYPE_VARINT) {
      status = static_cast<int64_t>(f.varint());
    }
  }
  return status;
}

// One grpc.health.v1 check of one server.
struct HealthCheck {
  grpc::ClientContext call;
  grpc::Slice empty{""};
  grpc::ByteBuffer request{&empty, 1};  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
};

// The serving status of a finished check ("SERVING", "NOT_SERVING", ...),
// or its error.
absl::StatusOr<std::string> ServingState(HealthCheck& check) {
  VS_RETURN_IF_ERROR(FromGrpcStatus(check.status));
  std::vector<grpc::Slice> slices;
  if (!check.response.Dump(&slices).ok()) {
    return absl::InternalError("Unreadable grpc.health.v1 response");
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  VS_ASSIGN_OR_RETURN(const int64_t status, ServingStatus(bytes));
  return status >= 0 && status < 4 ? kServingStatus[status]
                                   : absl::StrCat("status ", status);
}

double PerSecond(int64_t calls, double seconds) {
  return seconds > 0 ? static_cast<double>(calls) / seconds : 0;
}

// A server's (or the cluster's) info at the start and the end of the
// sampling interval.
struct Sample {
  std::string server;
  v1::ServerInfo first;
  v1::ServerInfo last;
};

struct Calls {
  const char* kind;
  int64_t before, after;
};

std::vector<Calls> CallsOf(const Sample& s) {
  return {{"reads", s.first.reads(), s.last.reads()},
          {"updates", s.first.updates(), s.last.updates()},
          {"gets", s.first.gets(), s.last.gets()}};
}

double Uptime(const v1::ServerInfo& info) {
  const absl::Time start = absl::FromUnixMicros(info.start_time_micros());
  return std::max(0.0, absl::ToDoubleSeconds(absl::Now() - start));
}

Json StatsJson(const Sample& s, double interval) {
  const double uptime = Uptime(s.last);
  Json j = {{"server", s.server},
            {"version", s.last.version()},
            {"commit", s.last.commit()},
            {"start_time", FormatMicros(s.last.start_time_micros())},
            {"uptime_seconds", uptime},
            {"variables", s.last.variable_count()},
            {"bytes", s.last.total_bytes()},
            {"interval_seconds", interval}};
  for (const Calls& c : CallsOf(s)) {
    Json item = {{"total", c.after},
                 {"per_second_since_start", PerSecond(c.after, uptime)}};
    if (interval > 0) {
      item["per_second"] = PerSecond(c.after - c.before, interval);
    }
    j["calls"][c.kind] = std::move(item);
  }
  return j;
}

void PrintStats(const Sample& s, double interval, std::ostream& out) {
  const double uptime = Uptime(s.last);
  out << absl::StrFormat("%-10s %s\n", "server", s.server);
  out << absl::StrFormat("%-10s %s (commit %s)\n", "version", s.last.version(),
                         s.last.commit());
  out << absl::StrFormat("%-10s %s (up %s)\n", "started",
                         FormatMicros(s.last.start_time_micros()),
                         FormatDuration(static_cast<int64_t>(uptime)));
  out << absl::StrFormat("%-10s %d\n", "variables", s.last.variable_count());
  out << absl::StrFormat("%-10s %s (%d)\n", "bytes",
                         HumanBytes(s.last.total_bytes()),
                         s.last.total_bytes());
  for (const Calls& c : CallsOf(s)) {
    std::string line = absl::StrFormat("%-10s %d total", c.kind, c.after);
    if (interval > 0) {
      absl::StrAppend(
          &line,
          absl::StrFormat(", %.1f/s over the last %gs",
                          PerSecond(c.after - c.before, interval), interval));
    }
    absl::StrAppend(&line, absl::StrFormat(", %.1f/s since start\n",
                                           PerSecond(c.after, uptime)));
    out << line;
  }
}

// The info of every shard of `context`'s server list, in list order.
absl::StatusOr<std::vector<v1::ServerInfo>> ShardInfos(
    const CommandContext& context, const std::vector<std::string>& shards) {
  if (shards.size() == 1) {
    VS_ASSIGN_OR_RETURN(v1::ServerInfo info, context.client->GetServerInfo());
    return std::vector<v1::ServerInfo>{std::move(info)};
  }
  ClientOptions options;
  options.timeout = context.timeout;
  options.security = context.security;
  std::vector<v1::ServerInfo> infos;
  for (const std::string& shard : shards) {
    absl::StatusOr<v1::ServerInfo> info =
        Client::Connect(shard, options)->GetServerInfo();
    if (!info.ok()) {
      return absl::Status(
          info.status().code(),
          absl::StrCat("Shard ", shard, ": ", info.status().message()));
    }
    infos.push_back(*std::move(info));
  }
  return infos;
}

}  // namespace

absl::Status Stats(const CommandContext& context, const StatsOptions& options) {
  const std::vector<std::string> shards =
      absl::StrSplit(context.server_address, ',');
  VS_ASSIGN_OR_RETURN(const std::vector<v1::ServerInfo> first,
                      ShardInfos(context, shards));
  std::vector<v1::ServerInfo> last = first;
  if (options.interval > absl::ZeroDuration()) {
    absl::SleepFor(options.interval);
    VS_ASSIGN_OR_RETURN(last, ShardInfos(context, shards));
  }
  const double interval = absl::ToDoubleSeconds(options.interval);
  std::vector<Sample> samples;
  for (size_t i = 0; i < shards.size(); ++i) {
    samples.push_back({shards[i], first[i], last[i]});
  }
  if (shards.size() == 1) {
    if (context.json) {
      *context.out << DumpJson(StatsJson(samples[0], interval)) << "\n";
    } else {
      PrintStats(samples[0], interval, *context.out);
    }
    return absl::OkStatus();
  }
  const Sample total = {absl::StrCat("total (", shards.size(), " shards)"),
                        SumServerInfos(first), SumServerInfos(last)};
  if (context.json) {
    Json j = {{"shards", Json::array()}, {"total", StatsJson(total, interval)}};
    for (const Sample& s : samples) {
      j["shards"].push_back(StatsJson(s, interval));
    }
    *context.out << DumpJson(j) << "\n";
    return absl::OkStatus();
  }
  for (const Sample& s : samples) {
    PrintStats(s, interval, *context.out);
    *context.out << "\n";
  }
  PrintStats(total, interval, *context.out);
  return absl::OkStatus();
}

absl::Status Top(const CommandContext& context, const TopOptions& options) {
  using Versions = std::map<std::string, int64_t>;  // by name
  auto versions = [&]() -> absl::StatusOr<Versions> {
    Versions now;
    VS_RETURN_IF_ERROR(ForEachVariable(*context.client, options.scope,
                                       context.page_size,
                                       [&](const v1::VariableInfo& info) {
                                         now[info.name()] = info.version();
                                         return absl::OkStatus();
                                       }));
    return now;
  };
  VS_ASSIGN_OR_RETURN(Versions before, versions());
  const double seconds = absl::ToDoubleSeconds(options.interval);
  for (int64_t round = 0; options.count == 0 || round < options.count;
       ++round) {
    absl::SleepFor(options.interval);
    VS_ASSIGN_OR_RETURN(Versions now, versions());
    struct Rate {
      std::string name;
      int64_t updates;
      int64_t version;
    };
    std::vector<Rate> rates;
    for (const auto& [name, version] : now) {
      auto it = before.find(name);
      // A variable created meanwhile was updated version - 1 times.
      const int64_t updates = version - (it == before.end() ? 1 : it->second);
      if (updates > 0) rates.push_back({name, updates, version});
    }
    std::stable_sort(
        rates.begin(), rates.end(),
        [](const Rate& a, const Rate& b) { return a.updates > b.updates; });
    const size_t changed = rates.size();
    if (options.limit > 0 &&
        rates.size() > static_cast<size_t>(options.limit)) {
      rates.resize(static_cast<size_t>(options.limit));
    }
    const std::string time = FormatMicros(absl::ToUnixMicros(absl::Now()));
    if (context.json) {
      Json j = {{"time", time},
                {"interval_seconds", seconds},
                {"variables", now.size()},
                {"changed", changed},
                {"top", Json::array()}};
      for (const Rate& r : rates) {
        j["top"].push_back({{"name", r.name},
                            {"updates", r.updates},
                            {"per_second", PerSecond(r.updates, seconds)},
                            {"version", r.version}});
      }
      *context.out << DumpJson(j) << "\n";
    } else {
      *context.out << absl::StrFormat(
          "%s  %d of %d variables updated in the last %gs\n", time, changed,
          now.size(), seconds);
      for (const Rate& r : rates) {
        *context.out << absl::StrFormat("%10.1f/s  %s\n",
                                        PerSecond(r.updates, seconds), r.name);
      }
    }
    context.out->flush();
    before = std::move(now);
  }
  return absl::OkStatus();
}

absl::Status Health(const CommandContext& context) {
  const std::vector<std::string> shards =
      absl::StrSplit(context.server_address, ',');
  // Every shard at once: a hung shard costs one deadline, not one each.
  std::vector<HealthCheck> checks(shards.size());
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (size_t i = 0; i < shards.size(); ++i) {
    stubs.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateChannel(shards[i], ChannelCredentials(context.security))));
    HealthCheck& check = checks[i];
    check.call.set_deadline(absl::ToChronoTime(absl::Now() + context.timeout));
    stubs[i]->UnaryCall(&check.call, "/grpc.health.v1.Health/Check",
                        grpc::StubOptions(), &check.request, &check.response,
                        [&check](grpc::Status s) {
                          check.status = std::move(s);
                          check.done.Notify();
                        });
  }
  std::vector<std::string> not_serving;  // "ADDRESS (STATE)"
  std::string name;
  for (size_t i = 0; i < shards.size(); ++i) {
    checks[i].done.WaitForNotification();
    const absl::StatusOr<std::string> state = ServingState(checks[i]);
    // One server: its state, or the error alone (as every command's).
    if (shards.size() == 1 && !state.ok()) return state.status();
    name =
        state.ok() ? *state : absl::StatusCodeToString(state.status().code());
    if (context.json) {
      Json line = {{"server", shards[i]}, {"status", name}};
      if (!state.ok()) line["error"] = state.status().message();
      *context.out << DumpJson(line) << "\n";
    } else if (shards.size() == 1) {
      *context.out << name << "\n";
    } else {
      *context.out << shards[i] << " " << name;
      if (!state.ok()) *context.out << ": " << state.status().message();
      *context.out << "\n";
    }
    if (name != kServingStatus[kServing]) {
      not_serving.push_back(absl::StrCat(shards[i], " (", name, ")"));
    }
  }
  if (not_serving.empty()) return absl::OkStatus();
  if (shards.size() == 1) {
    return absl::UnavailableError(
        absl::StrCat("Server ", context.server_address, " is ", name));
  }
  return absl::UnavailableError(
      absl::StrCat(not_serving.size(), " of ", shards.size(), " shards ",
                   not_serving.size() == 1 ? "is" : "are",
                   " not serving: ", absl::StrJoin(not_serving, ", ")));
}

}  // namespace varscope::cli
