#include "common/partitioners.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/shape.h"
#include "common/status.h"

namespace varscope {
namespace {

// min_max_variable_partitioner's default min_slice_size.
constexpr int64_t kDefaultMinSliceSize = int64_t{256} << 10;

// A partition list as Python prints it, e.g. "[4, 1]".
std::string ListString(absl::Span<const int64_t> values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

// `axis` as an index into `shape`, negative values counting from the end as
// Python indexing does.
absl::StatusOr<size_t> ResolveAxis(int32_t axis,
                                   absl::Span<const int64_t> shape) {
  const auto rank = static_cast<int64_t>(shape.size());
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Can not partition variable along axis %d when shape is only %s", axis,
        ShapeString(shape)));
  }
  return static_cast<size_t>(axis < 0 ? axis + rank : axis);
}

// The checks TensorFlow applies to a partitioner's result: one entry per
// axis, none below 1, at most one above 1, and no more parts than rows.
absl::Status CheckPartitions(absl::Span<const int64_t> shape,
                             absl::Span<const int64_t> partitions) {
  if (partitions.size() != shape.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Partitioner returned a partition list that does not match the "
        "Variable's rank: %s vs. %s",
        ListString(partitions), ShapeString(shape)));
  }
  if (std::any_of(partitions.begin(), partitions.end(),
                  [](int64_t p) { return p < 1; })) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Partitioner returned zero partitions for some axes: %s",
        ListString(partitions)));
  }
  if (std::count_if(partitions.begin(), partitions.end(),
                    [](int64_t p) { return p > 1; }) > 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Can only slice a variable along one dimension: shape: %s, "
        "partitioning: %s",
        ShapeString(shape), ListString(partitions)));
  }
  // Older TensorFlow's check; newer versions make empty parts instead.
  for (size_t i = 0; i < shape.size(); ++i) {
    if (partitions[i] > 1 && partitions[i] > shape[i]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "Cannot create %d slices for size %d. shape: %s, slicing: %s",
          partitions[i], shape[i], ListString(shape), ListString(partitions)));
    }
    // Beyond TensorFlow: a long axis of empty rows must not make a
    // server allocate (and store) a part per row.
    if (partitions[i] > kMaxPartitions) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "Cannot create %d slices: more than the limit of %d. shape: %s",
          partitions[i], kMaxPartitions, ListString(shape)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRankAtLeastOne(absl::Span<const int64_t> shape) {
  if (!shape.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("A partitioned Variable must have rank at least 1, "
                      "shape: %s",
                      ShapeString(shape)));
}

bool IsFullyDefined(absl::Span<const int64_t> shape) {
  return std::none_of(shape.begin(), shape.end(),
                      [](int64_t d) { return d < 0; });
}

absl::StatusOr<std::vector<int64_t>> FixedSize(
    const v1::Partitioner::FixedSize& spec, absl::Span<const int64_t> shape) {
  VS_ASSIGN_OR_RETURN(const size_t axis, ResolveAxis(spec.axis(), shape));
  std::vector<int64_t> partitions(shape.size(), 1);
  partitions[axis] = std::min(spec.num_shards(), shape[axis]);
  return partitions;
}

absl::StatusOr<std::vector<int64_t>> MinMaxVariable(
    const v1::Partitioner::MinMaxVariable& spec,
    absl::Span<const int64_t> shape, DType dtype) {
  VS_ASSIGN_OR_RETURN(const size_t axis, ResolveAxis(spec.axis(), shape));
  VS_ASSIGN_OR_RETURN(const int64_t num_elements, NumElements(shape));
  const int64_t min_slice_size =
      spec.min_slice_size() == 0 ? kDefaultMinSliceSize : spec.min_slice_size();
  const auto total_size_bytes = static_cast<double>(
      num_elements * static_cast<int64_t>(DTypeSize(dtype)));
  const auto wanted = static_cast<int64_t>(
      std::ceil(total_size_bytes / static_cast<double>(min_slice_size)));
  std::vector<int64_t> partitions(shape.size(), 1);
  partitions[axis] = std::max<int64_t>(
      1, std::min({shape[axis], spec.max_partitions(), wanted}));
  return partitions;
}

absl::StatusOr<std::vector<int64_t>> VariableAxisSize(
    const v1::Partitioner::VariableAxisSize& spec,
    absl::Span<const int64_t> shape, DType dtype) {
  VS_ASSIGN_OR_RETURN(const size_t axis, ResolveAxis(spec.axis(), shape));
  VS_ASSIGN_OR_RETURN(const int64_t num_elements, NumElements(shape));
  std::vector<int64_t> partitions(shape.size(), 1);
  // TensorFlow divides by zero here; a variable without elements fits in one
  // shard.
  if (num_elements == 0) return partitions;
  const double bytes_per_slice = static_cast<double>(num_elements) /
                                 static_cast<double>(shape[axis]) *
                                 static_cast<double>(DTypeSize(dtype));
  const double slices_per_shard =
      std::max(1.0, std::floor(static_cast<double>(spec.max_shard_bytes()) /
                               bytes_per_slice));
  int64_t axis_shards = static_cast<int64_t>(
      std::ceil(static_cast<double>(shape[axis]) / slices_per_shard));
  if (spec.max_shards() > 0) {
    axis_shards = std::min(spec.max_shards(), axis_shards);
  }
  partitions[axis] = axis_shards;
  return partitions;
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> ComputePartitions(
    const v1::Partitioner& spec, absl::Span<const int64_t> shape, DType dtype) {
  // Arguments TensorFlow checks when the partitioner is constructed.
  if (spec.has_variable_axis_size()) {
    if (spec.variable_axis_size().max_shard_bytes() < 1) {
      return absl::InvalidArgumentError(
          "Both max_shard_bytes and bytes_per_string_element must be "
          "positive.");
    }
    if (spec.variable_axis_size().max_shards() < 0) {
      return absl::InvalidArgumentError("max_shards must be positive.");
    }
  }
  if (!IsSupportedDType(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unsupported dtype ", static_cast<int>(dtype)));
  }
  VS_RETURN_IF_ERROR(ValidateDims(shape, /*allow_unknown=*/true));
  if (!IsFullyDefined(shape)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Shape of a new partitioned variable must be fully defined, but "
        "instead was %s.",
        ShapeString(shape)));
  }
  VS_RETURN_IF_ERROR(CheckRankAtLeastOne(shape));
  std::vector<int64_t> partitions;
  switch (spec.kind_case()) {
    case v1::Partitioner::kFixedSize: {
      VS_ASSIGN_OR_RETURN(partitions, FixedSize(spec.fixed_size(), shape));
      break;
    }
    case v1::Partitioner::kMinMaxVariable: {
      VS_ASSIGN_OR_RETURN(
          partitions, MinMaxVariable(spec.min_max_variable(), shape, dtype));
      break;
    }
    case v1::Partitioner::kVariableAxisSize: {
      VS_ASSIGN_OR_RETURN(
          partitions,
          VariableAxisSize(spec.variable_axis_size(), shape, dtype));
      break;
    }
    case v1::Partitioner::kExplicit:
      partitions.assign(spec.explicit_().partitions().begin(),
                        spec.explicit_().partitions().end());
      break;
    case v1::Partitioner::KIND_NOT_SET:
      return absl::InvalidArgumentError("Partitioner has no kind set");
  }
  VS_RETURN_IF_ERROR(CheckPartitions(shape, partitions));
  return partitions;
}

absl::StatusOr<std::vector<PartSlice>> SlicePartitions(
    std::string_view name, absl::Span<const int64_t> shape,
    absl::Span<const int64_t> partitions) {
  VS_RETURN_IF_ERROR(ValidateDims(shape, /*allow_unknown=*/true));
  if (!IsFullyDefined(shape)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Shape of a new partitioned variable (%s) must be fully defined, but "
        "instead was %s.",
        name, ShapeString(shape)));
  }
  VS_RETURN_IF_ERROR(CheckRankAtLeastOne(shape));
  VS_RETURN_IF_ERROR(CheckPartitions(shape, partitions));
  const auto sliced = std::find_if(partitions.begin(), partitions.end(),
                                   [](int64_t p) { return p > 1; });
  const size_t slice_dim =
      sliced == partitions.end() ? 0 : sliced - partitions.begin();
  const int64_t num_slices = partitions[slice_dim];
  const int64_t min_slice_len = shape[slice_dim] / num_slices;
  const int64_t num_longer = shape[slice_dim] % num_slices;
  std::vector<PartSlice> slices;
  slices.reserve(num_slices);
  std::vector<int64_t> offset(shape.size(), 0);
  for (int64_t i = 0; i < num_slices; ++i) {
    PartSlice slice{offset, std::vector<int64_t>(shape.begin(), shape.end())};
    slice.dims[slice_dim] = min_slice_len + (i < num_longer ? 1 : 0);
    offset[slice_dim] += slice.dims[slice_dim];
    slices.push_back(std::move(slice));
  }
  return slices;
}

}  // namespace varscope
