// Initial values computed on the server, deterministic given a seed.
#ifndef VARSCOPE_COMMON_INITIALIZERS_H_
#define VARSCOPE_COMMON_INITIALIZERS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "common/tensor.h"
#include "varscope/v1/tensor.pb.h"

namespace varscope {

// Resolves KIND_DEFAULT to TensorFlow's default for `dtype`: GLOROT_UNIFORM
// for floating dtypes, ZEROS for integers and bool. Other kinds unchanged.
v1::Initializer ResolveDefaultInitializer(const v1::Initializer& spec,
                                          DType dtype);

// OK if `spec` can initialize a variable of `dtype` and full shape
// `full_dims`; otherwise INVALID_ARGUMENT saying why (e.g. a random normal
// integer variable, identity of a non-2-D shape, a constant with more values
// than elements, a bad hyper-parameter).
absl::Status ValidateInitializer(const v1::Initializer& spec, DType dtype,
                                 absl::Span<const int64_t> full_dims);

// The part [offset, offset + dims) of the initial value of a variable of
// full shape `full_dims`. The whole value is a function of (spec, seed,
// dtype, full_dims) only, so the parts of a partitioned variable together
// equal the unpartitioned variable made with the same seed. An unpartitioned
// variable passes offset = all zeros and dims = full_dims. `seed` keys the
// random kinds; spec.seed() is not read (the caller resolves it).
// Returns INVALID_ARGUMENT when ValidateInitializer would, or when the part
// does not lie inside full_dims.
absl::StatusOr<Tensor> InitialValue(const v1::Initializer& spec, int64_t seed,
                                    DType dtype,
                                    absl::Span<const int64_t> full_dims,
                                    absl::Span<const int64_t> offset,
                                    absl::Span<const int64_t> dims);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_INITIALIZERS_H_
