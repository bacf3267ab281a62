// NumPy's .npy format (versions 1.0 to 3.0) for the dtypes numpy and
// Varscope share. bfloat16 has no numpy dtype: callers store it as float32
// (exact) and convert back (see Cast in values.h).
#ifndef VARSCOPE_CLIENT_CLI_NPY_H_
#define VARSCOPE_CLIENT_CLI_NPY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tensor.h"

namespace varscope::cli {

// The .npy header (magic, version 1.0, the padded dict) of a C-ordered
// little-endian array; the element bytes follow it. INVALID_ARGUMENT for
// bfloat16, which numpy cannot represent.
absl::StatusOr<std::string> NpyHeader(DType dtype,
                                      absl::Span<const int64_t> dims);

// The array in a .npy file's bytes, in numpy's dtype (big-endian data is
// byte-swapped). INVALID_ARGUMENT if the bytes are not a .npy array, are
// Fortran-ordered, or hold a dtype Varscope has no counterpart for (e.g.
// complex, uint32, strings, objects); DATA_LOSS if the data is short.
absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_NPY_H_
