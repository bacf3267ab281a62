#include "server/table/tensor_ops.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/shape.h"

namespace varscope::server {
namespace {

// data[i] = op(data[i], other[i]): float16 and bfloat16 in float32,
// integers wrapping around.
template <typename T, typename Op>
void Combine(const char* other, char* data, int64_t n, Op op) {
  if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    for (int64_t i = 0; i < n; ++i) {
      T a, b;
      memcpy(&a, data + i * sizeof(T), sizeof(T));
      memcpy(&b, other + i * sizeof(T), sizeof(T));
      const T result = FromDouble<T>(
          op(static_cast<float>(ToDouble(a)), static_cast<float>(ToDouble(b))));
      memcpy(data + i * sizeof(T), &result, sizeof(T));
    }
  } else if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    U* out = reinterpret_cast<U*>(data);
    const U* in = reinterpret_cast<const U*>(other);
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<U>(op(out[i], in[i]));
  } else {
    T* out = reinterpret_cast<T*>(data);
    const T* in = reinterpret_cast<const T*>(other);
    for (int64_t i = 0; i < n; ++i) out[i] = op(out[i], in[i]);
  }
}

}  // namespace

bool SupportsAdd(DType dtype) {
  return IsSupportedDType(dtype) && dtype != v1::DT_BOOL;
}

void AddInPlace(DType dtype, const char* delta, char* data, int64_t n) {
  VisitDType(dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, bool>) {
      Combine<T>(delta, data, n, [](auto a, auto b) { return a + b; });
    }
  });
}

void MulInPlace(DType dtype, const char* factor, char* data, int64_t n) {
  VisitDType(dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, bool>) {
      Combine<T>(factor, data, n, [](auto a, auto b) { return a * b; });
    }
  });
}

absl::Status ShapeMismatch(absl::string_view op, absl::string_view name,
                           const Tensor& t, absl::Span<const int64_t> dims,
                           DType dtype) {
  return ShapeMismatch(op, name, t.dtype(), t.dims(), dims, dtype);
}

absl::Status ShapeMismatch(absl::string_view op, absl::string_view name,
                           DType t_dtype, absl::Span<const int64_t> t_dims,
                           absl::Span<const int64_t> dims, DType dtype) {
  if (t_dtype != dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot ", op, " of dtype ", DTypeName(t_dtype),
                     " to variable ", name, " of dtype ", DTypeName(dtype)));
  }
  if (!std::equal(t_dims.begin(), t_dims.end(), dims.begin(), dims.end())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot ", op, " of shape ", ShapeString(t_dims),
                     " to variable ", name, " of shape ", ShapeString(dims)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> RowIndices(const Tensor& indices,
                                                absl::string_view name,
                                                int64_t num_rows) {
  if (indices.dims().size() != 1 ||
      (indices.dtype() != v1::DT_INT32 && indices.dtype() != v1::DT_INT64)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Indices for variable ", name,
        " must be a 1-D int32 or int64 tensor, "
        "not ",
        DTypeName(indices.dtype()), " of shape ", ShapeString(indices.dims())));
  }
  std::vector<int64_t> rows(static_cast<size_t>(indices.num_elements()));
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i] = indices.dtype() == v1::DT_INT32 ? indices.flat<int32_t>()[i]
                                              : indices.flat<int64_t>()[i];
    if (rows[i] < 0 || rows[i] >= num_rows) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Index ", rows[i], " at position ", i, " is out of range for ",
          "variable ", name, " with ", num_rows, " rows"));
    }
  }
  return rows;
}

absl::Status CheckRows(absl::string_view op, absl::string_view name,
                       const Tensor& rows, size_t n,
                       absl::Span<const int64_t> dims, DType dtype) {
  std::vector<int64_t> want = {static_cast<int64_t>(n)};
  if (!dims.empty()) want.insert(want.end(), dims.begin() + 1, dims.end());
  return ShapeMismatch(op, name, rows, want, dtype);
}

}  // namespace varscope::server
