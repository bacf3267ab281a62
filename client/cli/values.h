// Tensor values for people and scripts: text and JSON forms, parsing typed
// values, dtype conversion, and summary statistics.
//
// Text and JSON print floating values with the fewest digits that read back
// to the same value in their own dtype (float16 0.1 prints as 0.1); NaN and
// infinities are "nan", "inf" and "-inf" (JSON strings, as JSON has no such
// numbers); bools are true and false.
#ifndef VARSCOPE_CLIENT_CLI_VALUES_H_
#define VARSCOPE_CLIENT_CLI_VALUES_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tensor.h"
#include "nlohmann/json.hpp"

namespace varscope::cli {

// `value` converted element-wise to `to` through double, as numpy's astype
// (float32 -> bfloat16 rounds to nearest even; bfloat16 -> float32 is exact).
Tensor Cast(const Tensor& value, DType to);

// `value` as a value of variable `name` (dtype, dims): it must have that
// dtype, except that a bfloat16 variable takes float32 (numpy has no
// bfloat16), and exactly that shape. INVALID_ARGUMENT saying what differs.
absl::StatusOr<Tensor> ConformToVariable(Tensor value, DType dtype,
                                         absl::Span<const int64_t> dims,
                                         absl::string_view name);

// The whole value as nested lists, one innermost row per line:
// "[[1.0, 2.0],\n [3.0, 4.0]]"; a scalar as its element.
void PrintValues(const Tensor& value, std::ostream& out);

// The first `count` elements in row-major order: "[1.0, 2.0, ...]", with
// "..." when there are more.
std::string FormatFirstValues(const Tensor& value, int64_t count);

// The whole value as nested JSON arrays (a scalar as its element).
nlohmann::json ValuesToJson(const Tensor& value);

// The first `count` elements in row-major order as a flat JSON array.
nlohmann::json FirstValuesToJson(const Tensor& value, int64_t count);

// Parses `text` (JSON: a number, true/false, "nan"/"inf"/"-inf", or nested
// lists of them) as a value of dtype `dtype` and shape `dims`. A single
// element fills every element. INVALID_ARGUMENT if the text is not JSON,
// its nesting differs from `dims`, or an element does not fit the dtype
// (a fraction or out-of-range integer, a finite number beyond the range of
// a floating dtype, a non-bool for bool).
absl::StatusOr<Tensor> ParseValue(absl::string_view text, DType dtype,
                                  absl::Span<const int64_t> dims);

// Statistics of a value. Moments, extremes and the histogram cover the
// finite elements only; NaN and infinities are counted apart.
struct ValueStats {
  struct Bin {
    double low = 0;
    double high = 0;  // exclusive, except for the last bin
    int64_t count = 0;
  };
  int64_t elements = 0;
  int64_t finite = 0;
  int64_t zeros = 0;
  int64_t nans = 0;
  int64_t infs = 0;
  double min = 0;
  double max = 0;
  double mean = 0;
  double stddev = 0;  // population (numpy's ddof=0)
  double l2_norm = 0;
  std::vector<Bin> histogram;  // equal widths over [min, max]; empty if none
};

// REQUIRES: bins >= 1.
ValueStats ComputeStats(const Tensor& value, int bins);

// A double with the fewest significant digits (at most 6) that keep it
// readable, "nan"/"inf"/"-inf" for non-finite values: for statistics.
std::string FormatStat(double value);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_VALUES_H_
