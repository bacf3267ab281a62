#include "client/cli/values.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/format.h"
#include "common/shape.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

using Json = nlohmann::json;

template <typename T>
constexpr bool kIsFloating =
    std::is_same_v<T, float> || std::is_same_v<T, double> ||
    std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// Calls `fn(absl::Span<const T>)` with the value's elements.
template <typename Fn>
void VisitElements(const Tensor& value, Fn&& fn) {
  VisitDType(value.dtype(), [&](auto zero) {
    using T = decltype(zero);
    fn(value.flat<T>());
  });
}

// The fewest digits that read back to `v` in T; at least one fraction digit
// or an exponent, so that a float never reads as an integer.
template <typename T>
std::string FormatFloat(T v) {
  const double d = ToDouble(v);
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  std::string text;
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v);
    text.assign(buf, r.ptr);
  } else {
    int precision = 1;
    for (; precision < 9; ++precision) {
      snprintf(buf, sizeof(buf), "%.*g", precision, d);
      if (FromDouble<T>(strtod(buf, nullptr)).bits == v.bits) break;
    }
    // Fixed notation for moderate magnitudes, as Python's repr.
    snprintf(buf, sizeof(buf), "%.*e", precision - 1, d);
    const int exponent = atoi(strchr(buf, 'e') + 1);
    if (exponent >= -4 && exponent < 16) {
      snprintf(buf, sizeof(buf), "%.*f", std::max(0, precision - 1 - exponent),
               d);
    } else {
      snprintf(buf, sizeof(buf), "%.*g", precision, d);
    }
    text = buf;
  }
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

template <typename T>
std::string FormatElement(T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (kIsFloating<T>) {
    return FormatFloat(v);
  } else {
    return absl::StrCat(static_cast<int64_t>(v));
  }
}

template <typename T>
Json ElementToJson(T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return Json(v);
  } else if constexpr (kIsFloating<T>) {
    const std::string text = FormatFloat(v);
    if (!std::isfinite(ToDouble(v))) return Json(text);
    return Json(strtod(text.c_str(), nullptr));
  } else {
    return Json(static_cast<int64_t>(v));
  }
}

template <typename T>
void PrintNested(absl::Span<const T> flat, absl::Span<const int64_t> dims,
                 size_t axis, int64_t& next, std::ostream& out) {
  out << '[';
  for (int64_t i = 0; i < dims[axis]; ++i) {
    if (axis + 1 == dims.size()) {
      if (i > 0) out << ", ";
      out << FormatElement(flat[next++]);
    } else {
      if (i > 0) out << ",\n" << std::string(axis + 1, ' ');
      PrintNested(flat, dims, axis + 1, next, out);
    }
  }
  out << ']';
}

template <typename T>
Json NestedJson(absl::Span<const T> flat, absl::Span<const int64_t> dims,
                size_t axis, int64_t& next) {
  if (axis == dims.size()) return ElementToJson(flat[next++]);
  Json list = Json::array();
  for (int64_t i = 0; i < dims[axis]; ++i) {
    list.push_back(NestedJson(flat, dims, axis + 1, next));
  }
  return list;
}

absl::Status BadElement(const Json& j, DType dtype, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("Element ", DumpJson(j),
                                                 " is not a valid ",
                                                 DTypeName(dtype), ": ", why));
}

template <typename T>
absl::StatusOr<T> ParseElement(const Json& j, DType dtype) {
  if constexpr (std::is_same_v<T, bool>) {
    if (j.is_boolean()) return j.get<bool>();
    if (j.is_number_integer() && (j == 0 || j == 1)) return j == 1;
    return BadElement(j, dtype, "expected true, false, 0 or 1");
  } else if constexpr (kIsFloating<T>) {
    double d = 0;
    if (j.is_number()) {
      d = j.get<double>();
    } else if (j.is_string()) {
      const std::string s = absl::AsciiStrToLower(j.get<std::string>());
      if (s == "nan") {
        d = std::numeric_limits<double>::quiet_NaN();
      } else if (s == "inf" || s == "+inf" || s == "infinity") {
        d = std::numeric_limits<double>::infinity();
      } else if (s == "-inf" || s == "-infinity") {
        d = -std::numeric_limits<double>::infinity();
      } else {
        return BadElement(j, dtype, "expected a number, nan, inf or -inf");
      }
    } else {
      return BadElement(j, dtype, "expected a number, nan, inf or -inf");
    }
    const T v = FromDouble<T>(d);
    if (std::isfinite(d) && !std::isfinite(ToDouble(v))) {
      return BadElement(j, dtype, "out of range");
    }
    return v;
  } else {
    if (!j.is_number_integer()) return BadElement(j, dtype, "not an integer");
    const bool fits =
        j.is_number_unsigned()
            ? j.get<uint64_t>() <=
                  static_cast<uint64_t>(std::numeric_limits<T>::max())
            : j.get<int64_t>() >= std::numeric_limits<T>::min() &&
                  j.get<int64_t>() <= std::numeric_limits<T>::max();
    if (!fits) return BadElement(j, dtype, "out of range");
    return static_cast<T>(j.get<int64_t>());
  }
}

template <typename T>
absl::Status FillNested(const Json& j, DType dtype,
                        absl::Span<const int64_t> dims, size_t axis,
                        absl::Span<T> out, int64_t& next) {
  if (axis == dims.size()) {
    VS_ASSIGN_OR_RETURN(out[next], ParseElement<T>(j, dtype));
    ++next;
    return absl::OkStatus();
  }
  if (!j.is_array() || static_cast<int64_t>(j.size()) != dims[axis]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Value is a ragged nested list: ", DumpJson(j).substr(0, 80),
        " should be a list of ", dims[axis], " at depth ", axis));
  }
  for (const Json& item : j) {
    VS_RETURN_IF_ERROR(FillNested(item, dtype, dims, axis + 1, out, next));
  }
  return absl::OkStatus();
}

}  // namespace

Tensor Cast(const Tensor& value, DType to) {
  Tensor out(to, value.dims());
  VisitElements(value, [&](auto from) {
    VisitDType(to, [&](auto zero) {
      using T = decltype(zero);
      absl::Span<T> dst = out.mutable_flat<T>();
      for (size_t i = 0; i < from.size(); ++i) {
        dst[i] = FromDouble<T>(ToDouble(from[i]));
      }
    });
  });
  return out;
}

absl::StatusOr<Tensor> ConformToVariable(Tensor value, DType dtype,
                                         absl::Span<const int64_t> dims,
                                         absl::string_view name) {
  if (value.dtype() != dtype) {
    if (dtype != v1::DT_BFLOAT16 || value.dtype() != v1::DT_FLOAT) {
      return absl::InvalidArgumentError(absl::StrCat(
          "A value of dtype ", DTypeName(value.dtype()),
          " does not fit variable ", name, " of dtype ", DTypeName(dtype),
          dtype == v1::DT_BFLOAT16 ? " (give bfloat16 values as float32)"
                                   : ""));
    }
    value = Cast(value, dtype);
  }
  if (!std::equal(value.dims().begin(), value.dims().end(), dims.begin(),
                  dims.end())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "A value of shape ", ShapeString(value.dims()),
        " does not fit variable ", name, " of shape ", ShapeString(dims)));
  }
  return value;
}

void PrintValues(const Tensor& value, std::ostream& out) {
  VisitElements(value, [&](auto flat) {
    if (value.dims().empty()) {
      out << FormatElement(flat[0]);
      return;
    }
    int64_t next = 0;
    PrintNested(flat, value.dims(), 0, next, out);
  });
}

std::string FormatFirstValues(const Tensor& value, int64_t count) {
  std::string out = "[";
  VisitElements(value, [&](auto flat) {
    const int64_t n = std::min<int64_t>(count, flat.size());
    for (int64_t i = 0; i < n; ++i) {
      absl::StrAppend(&out, i > 0 ? ", " : "", FormatElement(flat[i]));
    }
    if (n < static_cast<int64_t>(flat.size())) {
      absl::StrAppend(&out, n > 0 ? ", " : "", "...");
    }
  });
  return out + "]";
}

Json ValuesToJson(const Tensor& value) {
  Json out;
  VisitElements(value, [&](auto flat) {
    int64_t next = 0;
    out = NestedJson(flat, value.dims(), 0, next);
  });
  return out;
}

Json FirstValuesToJson(const Tensor& value, int64_t count) {
  Json out = Json::array();
  VisitElements(value, [&](auto flat) {
    const int64_t n = std::min<int64_t>(count, flat.size());
    for (int64_t i = 0; i < n; ++i) out.push_back(ElementToJson(flat[i]));
  });
  return out;
}

absl::StatusOr<Tensor> ParseValue(absl::string_view text, DType dtype,
                                  absl::Span<const int64_t> dims) {
  const Json j = Json::parse(text.begin(), text.end(), nullptr,
                             /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Value '", text.substr(0, 80),
        "' is not a number, true/false, \"nan\"/\"inf\" or a nested list of "
        "them"));
  }
  std::vector<int64_t> shape;
  for (const Json* level = &j; level->is_array();) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->empty()) break;
    level = &level->front();
  }
  const bool fill = !j.is_array();
  if (!fill &&
      !std::equal(shape.begin(), shape.end(), dims.begin(), dims.end())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Value has shape ", ShapeString(shape),
                     " but the variable has shape ", ShapeString(dims)));
  }
  Tensor out(dtype, std::vector<int64_t>(dims.begin(), dims.end()));
  absl::Status status;
  VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    absl::Span<T> flat = out.mutable_flat<T>();
    if (fill) {
      absl::StatusOr<T> element = ParseElement<T>(j, dtype);
      status = element.status();
      if (element.ok()) std::fill(flat.begin(), flat.end(), *element);
      return;
    }
    int64_t next = 0;
    status = FillNested(j, dtype, dims, 0, flat, next);
  });
  VS_RETURN_IF_ERROR(status);
  return out;
}

ValueStats ComputeStats(const Tensor& value, int bins) {
  ValueStats s;
  s.elements = value.num_elements();
  VisitElements(value, [&](auto flat) {
    double mean = 0, m2 = 0, sum_squares = 0;
    for (const auto& e : flat) {
      const double x = ToDouble(e);
      if (std::isnan(x)) {
        ++s.nans;
        continue;
      }
      if (std::isinf(x)) {
        ++s.infs;
        continue;
      }
      if (x == 0) ++s.zeros;
      ++s.finite;
      s.min = s.finite == 1 ? x : std::min(s.min, x);
      s.max = s.finite == 1 ? x : std::max(s.max, x);
      const double delta = x - mean;  // Welford
      mean += delta / static_cast<double>(s.finite);
      m2 += delta * (x - mean);
      sum_squares += x * x;
    }
    if (s.finite == 0) return;
    s.mean = mean;
    s.stddev = std::sqrt(m2 / static_cast<double>(s.finite));
    s.l2_norm = std::sqrt(sum_squares);
    const int n = s.max > s.min ? bins : 1;
    const double width = (s.max - s.min) / n;
    for (int i = 0; i < n; ++i) {
      s.histogram.push_back(
          {s.min + i * width, i + 1 == n ? s.max : s.min + (i + 1) * width, 0});
    }
    for (const auto& e : flat) {
      const double x = ToDouble(e);
      if (!std::isfinite(x)) continue;
      const int i = width > 0 ? static_cast<int>((x - s.min) / width) : 0;
      ++s.histogram[std::clamp(i, 0, n - 1)].count;
    }
  });
  return s;
}

std::string FormatStat(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return absl::StrFormat("%.6g", value);
}

}  // namespace varscope::cli
