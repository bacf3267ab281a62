#include "client/cli/format.h"

#include <google/protobuf/util/json_util.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/cli/values.h"
#include "common/shape.h"
#include "common/tensor.h"

namespace varscope::cli {

using Json = nlohmann::json;

std::string HumanBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit + 1 < 5) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

std::string VariablesText(int64_t count) {
  return absl::StrCat(count, count == 1 ? " variable" : " variables");
}

std::string FormatMicros(int64_t unix_micros) {
  if (unix_micros == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ",
                          absl::FromUnixMicros(unix_micros),
                          absl::UTCTimeZone());
}

std::string FormatDuration(int64_t seconds) {
  const int64_t d = seconds / 86400, h = seconds / 3600 % 24,
                m = seconds / 60 % 60, s = seconds % 60;
  if (d > 0) return absl::StrFormat("%dd %02dh %02dm", d, h, m);
  if (h > 0) return absl::StrFormat("%dh %02dm %02ds", h, m, s);
  if (m > 0) return absl::StrFormat("%dm %02ds", m, s);
  return absl::StrCat(s, "s");
}

std::vector<int64_t> Dims(const v1::TensorShape& shape) {
  return {shape.dims().begin(), shape.dims().end()};
}

std::string ShapeText(const v1::TensorShape& shape) {
  return ShapeString(Dims(shape));
}

absl::StatusOr<std::vector<int64_t>> ParseShapeText(absl::string_view text) {
  absl::string_view inner = absl::StripAsciiWhitespace(text);
  if (!inner.empty() && ((inner.front() == '(' && inner.back() == ')') ||
                         (inner.front() == '[' && inner.back() == ']'))) {
    inner = inner.substr(1, inner.size() - 2);
  }
  std::vector<int64_t> dims;
  for (absl::string_view d :
       absl::StrSplit(inner, ',', absl::SkipWhitespace())) {
    d = absl::StripAsciiWhitespace(d);
    int64_t dim = 0;
    if (d == "None") {
      dim = -1;
    } else if (!absl::SimpleAtoi(d, &dim) || dim < -1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Invalid shape '", text,
          "': expected sizes separated by commas, e.g. 10,1 (-1 or None for "
          "an unknown size)"));
    }
    dims.push_back(dim);
  }
  return dims;
}

std::string InitializerText(const v1::Initializer& initializer) {
  std::vector<std::string> args;
  if (initializer.has_value()) {
    v1::Tensor proto = initializer.value();
    absl::StatusOr<Tensor> value = TensorFromProto(&proto);
    args.push_back(absl::StrCat(
        "value=", value.ok() ? FormatFirstValues(*value, 8) : "<invalid>"));
  } else if (initializer.kind() == v1::Initializer::CONSTANT) {
    args.push_back("value=0");
  }
  auto add = [&](const char* name, bool has, double v) {
    if (has) args.push_back(absl::StrCat(name, "=", FormatStat(v)));
  };
  add("mean", initializer.has_mean(), initializer.mean());
  add("stddev", initializer.has_stddev(), initializer.stddev());
  add("minval", initializer.has_minval(), initializer.minval());
  add("maxval", initializer.has_maxval(), initializer.maxval());
  add("scale", initializer.has_scale(), initializer.scale());
  add("gain", initializer.has_gain(), initializer.gain());
  if (initializer.kind() == v1::Initializer::VARIANCE_SCALING) {
    args.push_back(absl::StrCat(
        "mode=", absl::AsciiStrToLower(
                     v1::Initializer::FanMode_Name(initializer.mode()))));
    args.push_back(absl::StrCat(
        "distribution=",
        absl::AsciiStrToLower(
            v1::Initializer::Distribution_Name(initializer.distribution())
                .substr(5))));  // drop "DIST_"
  }
  if (initializer.has_seed()) {
    args.push_back(absl::StrCat("seed=", initializer.seed()));
  }
  return absl::StrCat(
      absl::AsciiStrToLower(v1::Initializer::Kind_Name(initializer.kind())),
      "(", absl::StrJoin(args, ", "), ")");
}

Json InitializerToJson(const v1::Initializer& initializer) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(initializer, &text, options)
           .ok()) {
    return Json::object();
  }
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

Json VariableInfoToJson(const v1::VariableInfo& info) {
  Json out = {
      {"name", info.name()},
      {"dtype", std::string(DTypeName(info.dtype()))},
      {"shape", Dims(info.shape())},
      {"bytes", info.byte_size()},
      {"version", info.version()},
      {"trainable", info.trainable()},
      {"initializer", InitializerToJson(info.initializer())},
      {"created", FormatMicros(info.create_time_micros())},
      {"updated", FormatMicros(info.update_time_micros())},
  };
  if (info.has_collections()) {
    out["collections"] = std::vector<std::string>(
        info.collections().names().begin(), info.collections().names().end());
  }
  if (info.has_slice()) {
    const v1::SliceInfo& slice = info.slice();
    out["slice"] = {
        {"full_name", slice.full_name()},
        {"full_shape", Dims(slice.full_shape())},
        {"offset", std::vector<int64_t>(slice.var_offset().begin(),
                                        slice.var_offset().end())},
        {"partitions", std::vector<int64_t>(slice.partitions().begin(),
                                            slice.partitions().end())},
        {"part_index", slice.part_index()},
    };
  }
  return out;
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void JsonArrayWriter::Add(const Json& element) {
  *out_ << (empty_ ? "[\n" : ",\n") << DumpJson(element);
  empty_ = false;
}

void JsonArrayWriter::Close() { *out_ << (empty_ ? "[]\n" : "\n]\n"); }

}  // namespace varscope::cli
