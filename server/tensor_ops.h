// Element-wise arithmetic on raw tensor bytes, for server-side updates.
#ifndef VARSCOPE_SERVER_TENSOR_OPS_H_
#define VARSCOPE_SERVER_TENSOR_OPS_H_

#include <cstdint>

#include "common/dtype.h"

namespace varscope::server {

// True if `dtype` supports addition (every dtype but bool).
bool SupportsAdd(DType dtype);

// data[i] += delta[i] for i < n, elements of `dtype`. Integers wrap around on
// overflow; float16 and bfloat16 add in float32 and round back.
// REQUIRES: SupportsAdd(dtype); both buffers hold n elements.
void AddInPlace(DType dtype, const char* delta, char* data, int64_t n);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TENSOR_OPS_H_
