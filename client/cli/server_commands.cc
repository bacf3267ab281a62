#include "client/cli/server_commands.h"

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
  grpc::GenericStub stub(grpc::CreateChannel(
      context.server_address, ChannelCredentials(context.security)));
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + context.timeout));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer response;
  grpc::Status grpc_status;
  absl::Notification done;
  stub.UnaryCall(&call, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   grpc_status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  VS_RETURN_IF_ERROR(FromGrpcStatus(grpc_status));
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return absl::InternalError("Unreadable grpc.health.v1 response");
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  VS_ASSIGN_OR_RETURN(const int64_t status, ServingStatus(bytes));
  const std::string name = status >= 0 && status < 4
                               ? kServingStatus[status]
                               : absl::StrCat("status ", status);
  if (context.json) {
    *context.out << DumpJson(
                        {{"server", context.server_address}, {"status", name}})
                 << "\n";
  } else {
    *context.out << name << "\n";
  }
  if (status != kServing) {
    return absl::UnavailableError(
        absl::StrCat("Server ", context.server_address, " is ", name));
  }
  return absl::OkStatus();
}

}  // namespace varscope::cli
