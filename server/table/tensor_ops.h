// Element-wise arithmetic on raw tensor bytes, for server-side updates.
#ifndef VARSCOPE_SERVER_TABLE_TENSOR_OPS_H_
#define VARSCOPE_SERVER_TABLE_TENSOR_OPS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "common/tensor.h"

namespace varscope::server {

// True if `dtype` supports addition (every dtype but bool).
bool SupportsAdd(DType dtype);

// data[i] += delta[i] for i < n, elements of `dtype`. Integers wrap around on
// overflow; float16 and bfloat16 add in float32 and round back.
// REQUIRES: SupportsAdd(dtype); both buffers hold n elements.
void AddInPlace(DType dtype, const char* delta, char* data, int64_t n);

// data[i] *= factor[i] for i < n; as AddInPlace.
void MulInPlace(DType dtype, const char* factor, char* data, int64_t n);

// INVALID_ARGUMENT unless `t` has `dtype` and the shape `dims`, saying that
// one cannot `op` ("assign a tensor", "apply a gradient", ...) of its dtype
// or shape to variable `name`.
absl::Status ShapeMismatch(absl::string_view op, absl::string_view name,
                           const Tensor& t, absl::Span<const int64_t> dims,
                           DType dtype);
// As above, for a tensor of `t_dtype` and the shape `t_dims`.
absl::Status ShapeMismatch(absl::string_view op, absl::string_view name,
                           DType t_dtype, absl::Span<const int64_t> t_dims,
                           absl::Span<const int64_t> dims, DType dtype);

// Checks that `rows` holds `n` rows of a variable of `dims` and `dtype` (see
// ShapeMismatch).
absl::Status CheckRows(absl::string_view op, absl::string_view name,
                       const Tensor& rows, size_t n,
                       absl::Span<const int64_t> dims, DType dtype);

// The rows a 1-D int32 or int64 `indices` tensor names, each checked to be in
// [0, num_rows) of variable `name`; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<int64_t>> RowIndices(const Tensor& indices,
                                                absl::string_view name,
                                                int64_t num_rows);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_TENSOR_OPS_H_
