#include "client/cli/server_commands.h"

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "client/cli/format.h"
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

}  // namespace

absl::Status Stats(const CommandContext& context, const StatsOptions& options) {
  VS_ASSIGN_OR_RETURN(const v1::ServerInfo first,
                      context.client->GetServerInfo());
  v1::ServerInfo last = first;
  if (options.interval > absl::ZeroDuration()) {
    absl::SleepFor(options.interval);
    VS_ASSIGN_OR_RETURN(last, context.client->GetServerInfo());
  }
  const double interval = absl::ToDoubleSeconds(options.interval);
  const absl::Time start = absl::FromUnixMicros(last.start_time_micros());
  const double uptime =
      std::max(0.0, absl::ToDoubleSeconds(absl::Now() - start));
  struct Calls {
    const char* kind;
    int64_t before, after;
  };
  const Calls calls[] = {{"reads", first.reads(), last.reads()},
                         {"updates", first.updates(), last.updates()},
                         {"gets", first.gets(), last.gets()}};
  if (context.json) {
    Json j = {{"server", context.server_address},
              {"version", last.version()},
              {"start_time", FormatMicros(last.start_time_micros())},
              {"uptime_seconds", uptime},
              {"variables", last.variable_count()},
              {"bytes", last.total_bytes()},
              {"interval_seconds", interval}};
    for (const Calls& c : calls) {
      Json item = {{"total", c.after},
                   {"per_second_since_start", PerSecond(c.after, uptime)}};
      if (interval > 0) {
        item["per_second"] = PerSecond(c.after - c.before, interval);
      }
      j["calls"][c.kind] = std::move(item);
    }
    *context.out << DumpJson(j) << "\n";
    return absl::OkStatus();
  }
  std::ostream& out = *context.out;
  out << absl::StrFormat("%-10s %s\n", "server", context.server_address);
  out << absl::StrFormat("%-10s %s\n", "version", last.version());
  out << absl::StrFormat("%-10s %s (up %s)\n", "started",
                         FormatMicros(last.start_time_micros()),
                         FormatDuration(static_cast<int64_t>(uptime)));
  out << absl::StrFormat("%-10s %d\n", "variables", last.variable_count());
  out << absl::StrFormat("%-10s %s (%d)\n", "bytes",
                         HumanBytes(last.total_bytes()), last.total_bytes());
  for (const Calls& c : calls) {
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
