#include "server/table/durability.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace varscope::server {

absl::StatusOr<Durability> ParseDurability(absl::string_view text) {
  Durability durability;
  if (text == "wal") return durability;
  if (text == "sync") {
    durability.mode = Durability::Mode::kSync;
    return durability;
  }
  absl::string_view interval = text;
  if (absl::ConsumePrefix(&interval, "interval=")) {
    durability.mode = Durability::Mode::kInterval;
    if (!absl::ParseDuration(interval, &durability.interval) ||
        durability.interval < absl::Milliseconds(1) ||
        durability.interval == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Bad durability interval '", interval,
                       "': expected a duration of at least 1ms such as 200ms, "
                       "1.5s or 1m"));
    }
    return durability;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("Unknown durability mode '", text,
                   "': expected wal, sync or interval=DURATION (e.g. "
                   "interval=200ms)"));
}

std::string DurabilityToString(const Durability& durability) {
  switch (durability.mode) {
    case Durability::Mode::kWal:
      return "wal";
    case Durability::Mode::kSync:
      return "sync";
    case Durability::Mode::kInterval:
      return absl::StrCat("interval=",
                          absl::FormatDuration(durability.interval));
  }
  return "";
}

}  // namespace varscope::server
