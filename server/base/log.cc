#include "server/base/log.h"

#include <unistd.h>

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/base/metrics.h"

namespace varscope::server::log {
namespace {

constexpr const char* kLevelNames[] = {"debug", "info", "warning", "error"};
constexpr const char* kTextLevels[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

std::atomic<Level> g_level{Level::kInfo};
std::atomic<Format> g_format{Format::kText};

// `text` in double quotes, JSON-escaped (a superset of what text needs).
std::string Quoted(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// A text value needs no quotes when it is non-empty and has no space,
// quote, backslash, '=' or control character.
bool IsBare(absl::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '"' || c == '\\' ||
        c == '=') {
      return false;
    }
  }
  return true;
}

std::string Value(const Field& field, Format format) {
  return std::visit(
      [format](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return format == Format::kText && IsBare(v) ? v : Quoted(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          return metrics::FormatNumber(v);
        } else {
          return absl::StrCat(v);
        }
      },
      field.value);
}

}  // namespace

absl::StatusOr<Level> ParseLevel(absl::string_view text) {
  for (int i = 0; i < 4; ++i) {
    if (text == kLevelNames[i]) return static_cast<Level>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "Unknown log level '", text, "'; use debug, info, warning or error"));
}

absl::StatusOr<Format> ParseFormat(absl::string_view text) {
  if (text == "text") return Format::kText;
  if (text == "json") return Format::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("Unknown log format '", text, "'; use text or json"));
}

void Configure(Level level, Format format) {
  g_level.store(level);
  g_format.store(format);
}

bool Enabled(Level level) { return level >= g_level.load(); }

std::string FormatLine(Format format, absl::Time time, Level level,
                       absl::string_view event,
                       std::initializer_list<Field> fields) {
  const std::string when =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
  const int index = static_cast<int>(level);
  std::string line;
  if (format == Format::kJson) {
    line = absl::StrCat("{\"time\":\"", when, "\",\"level\":\"",
                        kLevelNames[index], "\",\"event\":", Quoted(event));
    for (const Field& f : fields) {
      absl::StrAppend(&line, ",", Quoted(f.key), ":", Value(f, format));
    }
    line += "}\n";
    return line;
  }
  line = absl::StrCat(when, " ", kTextLevels[index], " ", event);
  for (const Field& f : fields) {
    absl::StrAppend(&line, " ", f.key, "=", Value(f, format));
  }
  line += "\n";
  return line;
}

void Log(Level level, absl::string_view event,
         std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  const std::string line =
      FormatLine(g_format.load(), absl::Now(), level, event, fields);
  // One write(2) of the whole line: concurrent lines do not interleave.
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n =
        write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (n <= 0) return;
    written += static_cast<size_t>(n);
  }
}

}  // namespace varscope::server::log
