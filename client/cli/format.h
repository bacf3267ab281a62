// Text and JSON forms of variable metadata shared by the CLI's commands.
#ifndef VARSCOPE_CLIENT_CLI_FORMAT_H_
#define VARSCOPE_CLIENT_CLI_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::cli {

// "0 B", "999 B", "1.0 KiB", "1.5 MiB", ... (powers of 1024).
std::string HumanBytes(int64_t bytes);

// "1 variable", "3 variables".
std::string VariablesText(int64_t count);

// "2024-05-01T12:00:00.000000Z"; "-" for 0.
std::string FormatMicros(int64_t unix_micros);

// "1h 02m 03s", "2d 03h 04m", "45s".
std::string FormatDuration(int64_t seconds);

std::vector<int64_t> Dims(const v1::TensorShape& shape);

// TensorFlow's form: "(10, 2)", "()".
std::string ShapeText(const v1::TensorShape& shape);

// Parses a shape as typed on a command line: "10,1", "(10, 1)", "[10, 1]",
// "()" or "" for a scalar; -1 or None is an unknown size. INVALID_ARGUMENT
// otherwise.
absl::StatusOr<std::vector<int64_t>> ParseShapeText(absl::string_view text);

// "random_normal(mean=0, stddev=0.1, seed=42)", "zeros(seed=7)",
// "constant(value=[1, 2])"; the fields the initializer sets.
std::string InitializerText(const v1::Initializer& initializer);

// The initializer in protobuf's JSON mapping with proto field names
// (int64 seeds are strings, as that mapping says).
nlohmann::json InitializerToJson(const v1::Initializer& initializer);

// Every field of `info`: name, dtype, shape, bytes, version, trainable,
// initializer, created/updated (ISO 8601 UTC), and slice when set.
nlohmann::json VariableInfoToJson(const v1::VariableInfo& info);

// Dumps `value` on one line, replacing invalid UTF-8.
std::string DumpJson(const nlohmann::json& value);

// Writes a JSON array one element per line as elements arrive, so that
// long listings stream: "[\n{...},\n{...}\n]\n". Thread-compatible.
class JsonArrayWriter {
 public:
  explicit JsonArrayWriter(std::ostream* out) : out_(out) {}
  void Add(const nlohmann::json& element);
  // Closes the array. REQUIRES: called once, last.
  void Close();

 private:
  std::ostream* out_;
  bool empty_ = true;
};

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_FORMAT_H_
