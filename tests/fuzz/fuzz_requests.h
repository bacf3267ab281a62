// Requests of the variable service built from fuzz input: names from a small
// alphabet of valid and invalid segments, and dtypes, shapes, tensors,
// initializers, partitioners and updates mixing valid, mismatched and absurd
// values, so that random bytes reach both the checks and the code past them.
#ifndef VARSCOPE_TESTS_FUZZ_FUZZ_REQUESTS_H_
#define VARSCOPE_TESTS_FUZZ_FUZZ_REQUESTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "common/dtype.h"
#include "tests/fuzz/fuzz_input.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::fuzz {

// A variable the table holds, which requests often name so that they reach
// existing variables with matching (or nearly matching) shapes.
struct KnownVariable {
  std::string name;
  DType dtype = v1::DT_INVALID;
  std::vector<int64_t> dims;
  int64_t version = 0;
};

// A name: often a known one, else segments (some invalid, empty or very
// long) joined by '/', or raw bytes.
std::string FuzzName(FuzzInput& in, absl::Span<const KnownVariable> known);

// A tensor: often of `like`'s dtype and shape (when given) with the right
// number of bytes, else any dtype number, shape and length.
v1::Tensor FuzzTensor(FuzzInput& in, const KnownVariable* like);

v1::GetVariableRequest FuzzGetVariable(FuzzInput& in,
                                       absl::Span<const KnownVariable> known);
v1::BatchUpdateRequest FuzzBatchUpdate(FuzzInput& in,
                                       absl::Span<const KnownVariable> known);
v1::GatherRequest FuzzGather(FuzzInput& in,
                             absl::Span<const KnownVariable> known);
v1::ListVariablesRequest FuzzList(FuzzInput& in,
                                  absl::Span<const KnownVariable> known);
v1::BatchReadRequest FuzzBatchRead(FuzzInput& in,
                                   absl::Span<const KnownVariable> known);

}  // namespace varscope::fuzz

#endif  // VARSCOPE_TESTS_FUZZ_FUZZ_REQUESTS_H_
