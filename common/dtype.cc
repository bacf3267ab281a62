#include "common/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace varscope {
namespace {

struct DTypeEntry {
  DType dtype;
  absl::string_view name;
  size_t size;
};

constexpr DTypeEntry kEntries[] = {
    {v1::DT_FLOAT, "float32", 4}, {v1::DT_DOUBLE, "float64", 8},
    {v1::DT_HALF, "float16", 2},  {v1::DT_BFLOAT16, "bfloat16", 2},
    {v1::DT_INT8, "int8", 1},     {v1::DT_UINT8, "uint8", 1},
    {v1::DT_INT16, "int16", 2},   {v1::DT_INT32, "int32", 4},
    {v1::DT_INT64, "int64", 8},   {v1::DT_BOOL, "bool", 1},
};

const DTypeEntry* Find(int dtype) {
  for (const DTypeEntry& e : kEntries) {
    if (e.dtype == dtype) return &e;
  }
  return nullptr;
}

}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {  // inf or nan
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // zero
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits =
        sign | static_cast<uint32_t>(112 - e) << 23 | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t FloatToHalf(float value) {
  const uint32_t f = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  const uint32_t abs = f & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u);
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to inf
  if (abs < 0x38800000u) {                        // subnormal or zero in half
    // value * 2^24 rounded to nearest even gives the subnormal mantissa.
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  const uint32_t mant_odd = (abs >> 13) & 1u;
  const uint32_t rounded = abs + 0xfffu + mant_odd;
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

float BFloat16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t FloatToBFloat16(float value) {
  const uint32_t f = std::bit_cast<uint32_t>(value);
  if ((f & 0x7fffffffu) > 0x7f800000u) {  // nan: keep it a quiet nan
    return static_cast<uint16_t>((f >> 16) | 0x40u);
  }
  const uint32_t lsb = (f >> 16) & 1u;
  return static_cast<uint16_t>((f + 0x7fffu + lsb) >> 16);
}

bool IsSupportedDType(int dtype) { return Find(dtype) != nullptr; }

absl::string_view DTypeName(DType dtype) {
  const DTypeEntry* e = Find(dtype);
  return e == nullptr ? "invalid" : e->name;
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const DTypeEntry& e : kEntries) {
    if (e.name == name) return e.dtype;
  }
  struct Alias {
    absl::string_view name;
    DType dtype;
  };
  static constexpr Alias kAliases[] = {{"float", v1::DT_FLOAT},
                                       {"double", v1::DT_DOUBLE},
                                       {"half", v1::DT_HALF},
                                       {"bool_", v1::DT_BOOL},
                                       {"float_", v1::DT_DOUBLE}};
  for (const Alias& a : kAliases) {
    if (a.name == name) return a.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "Unknown dtype '", name,
      "'; expected one of float32, float64, float16, bfloat16, int8, uint8, "
      "int16, int32, int64, bool"));
}

size_t DTypeSize(DType dtype) {
  const DTypeEntry* e = Find(dtype);
  return e == nullptr ? 0 : e->size;
}

bool IsFloating(DType dtype) {
  return dtype == v1::DT_FLOAT || dtype == v1::DT_DOUBLE ||
         dtype == v1::DT_HALF || dtype == v1::DT_BFLOAT16;
}

bool IsInteger(DType dtype) {
  return dtype == v1::DT_INT8 || dtype == v1::DT_UINT8 ||
         dtype == v1::DT_INT16 || dtype == v1::DT_INT32 ||
         dtype == v1::DT_INT64;
}

}  // namespace varscope
