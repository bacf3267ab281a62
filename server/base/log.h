// varscoped's log: one line per event on stderr, as text or JSON, at or
// above a level. Every message of the server goes through Log (the
// "serving on" line on stdout is a readiness announcement for scripts, and a
// refused start's "varscoped: CODE: message" its exit diagnostic, as a
// command-line tool's).
//
// Text:  2025-06-01T12:00:00.123456Z INFO start listen=127.0.0.1:7070 ...
// JSON:  {"time":"2025-06-01T12:00:00.123456Z","level":"info",
//         "event":"start","listen":"127.0.0.1:7070",...}
// Text values are written bare when they are a plain word and
// double-quoted (with \" \\ \n escaped) otherwise.
#ifndef VARSCOPE_SERVER_BASE_LOG_H_
#define VARSCOPE_SERVER_BASE_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace varscope::server::log {

enum class Level { kDebug, kInfo, kWarning, kError };
enum class Format { kText, kJson };

// "debug", "info", "warning", "error"; INVALID_ARGUMENT naming them
// otherwise.
absl::StatusOr<Level> ParseLevel(absl::string_view text);
// "text", "json"; INVALID_ARGUMENT naming them otherwise.
absl::StatusOr<Format> ParseFormat(absl::string_view text);

// One key=value of an event.
struct Field {
  Field(absl::string_view k, absl::string_view v)
      : key(k), value(std::string(v)) {}
  Field(absl::string_view k, const char* v) : key(k), value(std::string(v)) {}
  Field(absl::string_view k, const std::string& v) : key(k), value(v) {}
  Field(absl::string_view k, bool v) : key(k), value(v) {}
  Field(absl::string_view k, double v) : key(k), value(v) {}
  template <typename Int,
            typename = std::enable_if_t<std::is_integral_v<Int> &&
                                        !std::is_same_v<Int, bool>>>
  Field(absl::string_view k, Int v) : key(k), value(static_cast<int64_t>(v)) {}

  absl::string_view key;
  std::variant<std::string, int64_t, double, bool> value;
};

// Sets the level below which events are dropped and the format. Default:
// info, text. Call before other threads log (main does, first thing).
void Configure(Level level, Format format);

// Whether events at `level` are written.
bool Enabled(Level level);

// Writes event `event` with `fields` as one line on stderr (one write, so
// lines of concurrent events never interleave). Thread-safe.
void Log(Level level, absl::string_view event,
         std::initializer_list<Field> fields);

// The line Log writes for an event at time `time`, with its '\n'.
std::string FormatLine(Format format, absl::Time time, Level level,
                       absl::string_view event,
                       std::initializer_list<Field> fields);

}  // namespace varscope::server::log

#endif  // VARSCOPE_SERVER_BASE_LOG_H_
