#include "server/tensor_ops.h"

#include <cstring>
#include <type_traits>

namespace varscope::server {
namespace {

template <typename T>
void Add(const char* delta, char* data, int64_t n) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    for (int64_t i = 0; i < n; ++i) {
      T a, b;
      memcpy(&a, data + i * sizeof(T), sizeof(T));
      memcpy(&b, delta + i * sizeof(T), sizeof(T));
      const T sum = FromDouble<T>(static_cast<float>(ToDouble(a)) +
                                  static_cast<float>(ToDouble(b)));
      memcpy(data + i * sizeof(T), &sum, sizeof(T));
    }
  } else if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    U* out = reinterpret_cast<U*>(data);
    const U* in = reinterpret_cast<const U*>(delta);
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<U>(out[i] + in[i]);
  } else {
    T* out = reinterpret_cast<T*>(data);
    const T* in = reinterpret_cast<const T*>(delta);
    for (int64_t i = 0; i < n; ++i) out[i] += in[i];
  }
}

}  // namespace

bool SupportsAdd(DType dtype) {
  return IsSupportedDType(dtype) && dtype != v1::DT_BOOL;
}

void AddInPlace(DType dtype, const char* delta, char* data, int64_t n) {
  VisitDType(dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, bool>) Add<T>(delta, data, n);
  });
}

}  // namespace varscope::server
