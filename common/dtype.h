// Element types: names as TensorFlow prints them, sizes, conversions, and a
// visitor that maps a runtime dtype to its C++ element type.
#ifndef VARSCOPE_COMMON_DTYPE_H_
#define VARSCOPE_COMMON_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "varscope/v1/tensor.pb.h"

namespace varscope {

using DType = v1::DataType;

// IEEE 754 binary16, stored as its bit pattern.
struct Half {
  uint16_t bits;
};
// bfloat16 (the top half of a float32), stored as its bit pattern.
struct BFloat16 {
  uint16_t bits;
};

// Conversions round to nearest even, as numpy and TensorFlow do.
float HalfToFloat(uint16_t bits);
uint16_t FloatToHalf(float value);
float BFloat16ToFloat(uint16_t bits);
uint16_t FloatToBFloat16(float value);

// Every dtype a variable may have, in a stable order.
inline constexpr DType kAllDTypes[] = {
    v1::DT_FLOAT, v1::DT_DOUBLE, v1::DT_HALF,  v1::DT_BFLOAT16, v1::DT_INT8,
    v1::DT_UINT8, v1::DT_INT16,  v1::DT_INT32, v1::DT_INT64,    v1::DT_BOOL};

// True for the dtypes listed in kAllDTypes.
bool IsSupportedDType(int dtype);

// TensorFlow's name of `dtype` ("float32", "float64", "float16", "bfloat16",
// "int32", "int64", "bool", ...); "invalid" for an unsupported value.
absl::string_view DTypeName(DType dtype);

// Parses a TensorFlow or numpy dtype name ("float32", "float", "half", ...).
// Returns INVALID_ARGUMENT for an unknown name.
absl::StatusOr<DType> ParseDType(absl::string_view name);

// Bytes per element; 0 for an unsupported dtype.
size_t DTypeSize(DType dtype);

bool IsFloating(DType dtype);
bool IsInteger(DType dtype);

// Element conversions through double, as numpy's astype does (bool: != 0).
template <typename T>
double ToDouble(T value) {
  if constexpr (std::is_same_v<T, Half>) {
    return HalfToFloat(value.bits);
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16ToFloat(value.bits);
  } else {
    return static_cast<double>(value);
  }
}

template <typename T>
T FromDouble(double value) {
  if constexpr (std::is_same_v<T, Half>) {
    return Half{FloatToHalf(static_cast<float>(value))};
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16{FloatToBFloat16(static_cast<float>(value))};
  } else if constexpr (std::is_same_v<T, bool>) {
    return value != 0;
  } else {
    return static_cast<T>(value);
  }
}

// Calls `fn(T{})` with T the element type of `dtype` and returns its result.
// REQUIRES: IsSupportedDType(dtype).
template <typename Fn>
decltype(auto) VisitDType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case v1::DT_DOUBLE:
      return fn(double{});
    case v1::DT_HALF:
      return fn(Half{});
    case v1::DT_BFLOAT16:
      return fn(BFloat16{});
    case v1::DT_INT8:
      return fn(int8_t{});
    case v1::DT_UINT8:
      return fn(uint8_t{});
    case v1::DT_INT16:
      return fn(int16_t{});
    case v1::DT_INT32:
      return fn(int32_t{});
    case v1::DT_INT64:
      return fn(int64_t{});
    case v1::DT_BOOL:
      return fn(bool{});
    default:
      return fn(float{});
  }
}

}  // namespace varscope

#endif  // VARSCOPE_COMMON_DTYPE_H_
