// Partitioned variables: how many parts per axis (TensorFlow's partitioners)
// and where each part sits.
#ifndef VARSCOPE_COMMON_PARTITIONERS_H_
#define VARSCOPE_COMMON_PARTITIONERS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "varscope/v1/tensor.pb.h"

namespace varscope {

// The most parts a partitioned variable may have.
inline constexpr int64_t kMaxPartitions = int64_t{1} << 16;

// The partitions per axis that `spec` gives a variable of fully defined
// `shape` and `dtype`, as TensorFlow's fixed_size_partitioner,
// min_max_variable_partitioner and variable_axis_size_partitioner compute
// them (Explicit: the given list); a negative axis counts from the end, as
// Python indexing does. INVALID_ARGUMENT with TensorFlow's texts for bad
// arguments, a shape that is not fully defined or of rank 0, an axis out of
// range, or a result that SlicePartitions would reject.
absl::StatusOr<std::vector<int64_t>> ComputePartitions(
    const v1::Partitioner& spec, absl::Span<const int64_t> shape, DType dtype);

struct PartSlice {
  std::vector<int64_t> offset;  // in the full variable
  std::vector<int64_t> dims;    // of this part
};

// Splits `shape` by `partitions` along its one partitioned axis: the first
// `dim % n` parts get one more row; with no axis partitioned, one part. Checks
// the shape and list as TensorFlow's _get_partitioned_variable does (fully
// defined shape, naming `name`; rank at least 1; rank match; no zero; at most
// one axis partitioned) and, as older TensorFlow did, no more parts than rows.
// INVALID_ARGUMENT with TensorFlow's texts otherwise; RESOURCE_EXHAUSTED for
// more than kMaxPartitions parts (also from ComputePartitions).
absl::StatusOr<std::vector<PartSlice>> SlicePartitions(
    std::string_view name, absl::Span<const int64_t> shape,
    absl::Span<const int64_t> partitions);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_PARTITIONERS_H_
