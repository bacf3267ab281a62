#include "common/partitioners.h"

#include <cstdint>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::varscope::testing::StatusIs;

// Matches an OK StatusOr whose value matches `matcher`.
MATCHER_P(IsOkAndHolds, matcher, "") {
  if (!arg.ok()) {
    *result_listener << "whose status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

v1::Partitioner FixedSize(int64_t num_shards, int32_t axis = 0) {
  v1::Partitioner spec;
  spec.mutable_fixed_size()->set_num_shards(num_shards);
  spec.mutable_fixed_size()->set_axis(axis);
  return spec;
}

v1::Partitioner MinMax(int64_t max_partitions, int32_t axis = 0,
                       int64_t min_slice_size = 0) {
  v1::Partitioner spec;
  auto* m = spec.mutable_min_max_variable();
  m->set_max_partitions(max_partitions);
  m->set_axis(axis);
  m->set_min_slice_size(min_slice_size);
  return spec;
}

v1::Partitioner AxisSize(int64_t max_shard_bytes, int32_t axis = 0,
                         int64_t max_shards = 0) {
  v1::Partitioner spec;
  auto* v = spec.mutable_variable_axis_size();
  v->set_max_shard_bytes(max_shard_bytes);
  v->set_axis(axis);
  v->set_max_shards(max_shards);
  return spec;
}

v1::Partitioner Explicit(std::vector<int64_t> partitions) {
  v1::Partitioner spec;
  spec.mutable_explicit_()->mutable_partitions()->Assign(partitions.begin(),
                                                         partitions.end());
  return spec;
}

// ---------------------------------------------------------------------------
// fixed_size_partitioner: partitions[axis] = min(num_shards, shape[axis]).

TEST(FixedSizePartitioner, SplitsTheAxisIntoNumShards) {
  EXPECT_THAT(ComputePartitions(FixedSize(3), {10, 3}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(3, 1)));
  EXPECT_THAT(ComputePartitions(FixedSize(2, 1), {10, 3}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 2)));
  EXPECT_THAT(ComputePartitions(FixedSize(1), {10, 3}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1)));
}

TEST(FixedSizePartitioner, NeverExceedsTheDimension) {
  EXPECT_THAT(ComputePartitions(FixedSize(20), {10, 3}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(10, 1)));
}

TEST(FixedSizePartitioner, NegativeAxisCountsFromTheEnd) {
  EXPECT_THAT(ComputePartitions(FixedSize(3, -1), {10, 4, 6}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1, 3)));
  EXPECT_THAT(ComputePartitions(FixedSize(3, -3), {10, 4, 6}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(3, 1, 1)));
}

TEST(FixedSizePartitioner, ZeroShardsIsTensorFlowsZeroPartitionsError) {
  EXPECT_THAT(ComputePartitions(FixedSize(0), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner returned zero partitions for some axes: "
                       "[0, 1]"));
  EXPECT_THAT(ComputePartitions(FixedSize(-2, 1), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner returned zero partitions for some axes: "
                       "[1, -2]"));
  // An empty axis gives min(num_shards, 0) = 0 parts, as in TensorFlow.
  EXPECT_THAT(ComputePartitions(FixedSize(4), {0, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner returned zero partitions for some axes: "
                       "[0, 1]"));
}

TEST(FixedSizePartitioner, AxisOutOfRange) {
  EXPECT_THAT(ComputePartitions(FixedSize(2, 2), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Can not partition variable along axis 2 when shape is "
                       "only (10, 3)"));
  EXPECT_THAT(ComputePartitions(FixedSize(2, -3), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Can not partition variable along axis -3 when shape "
                       "is only (10, 3)"));
}

// ---------------------------------------------------------------------------
// min_max_variable_partitioner:
// partitions[axis] = max(1, min(shape[axis], max_partitions,
//                               ceil(num_elements * dtype_size / min_slice))).

TEST(MinMaxVariablePartitioner, DocstringExample) {
  // float32 [1024, 1024] is 4 MiB = 16 slices of 256 KiB.
  EXPECT_THAT(ComputePartitions(MinMax(16), {1024, 1024}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(16, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(100), {1024, 1024}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(16, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(8), {1024, 1024}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(8, 1)));
}

TEST(MinMaxVariablePartitioner, UsesTheDTypeSize) {
  EXPECT_THAT(ComputePartitions(MinMax(100), {1024, 1024}, v1::DT_DOUBLE),
              IsOkAndHolds(ElementsAre(32, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(100), {1024, 1024}, v1::DT_HALF),
              IsOkAndHolds(ElementsAre(8, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(100), {1024, 1024}, v1::DT_BFLOAT16),
              IsOkAndHolds(ElementsAre(8, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(100), {1024, 1024}, v1::DT_BOOL),
              IsOkAndHolds(ElementsAre(4, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(100), {1024, 1024}, v1::DT_INT64),
              IsOkAndHolds(ElementsAre(32, 1)));
}

TEST(MinMaxVariablePartitioner, RoundsUpAndCapsByShape) {
  // float64 [100, 10] = 8000 bytes.
  EXPECT_THAT(ComputePartitions(MinMax(50, 0, 1000), {100, 10}, v1::DT_DOUBLE),
              IsOkAndHolds(ElementsAre(8, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(50, 0, 3000), {100, 10}, v1::DT_DOUBLE),
              IsOkAndHolds(ElementsAre(3, 1)));  // ceil(2.67)
  EXPECT_THAT(ComputePartitions(MinMax(50, 1, 1000), {100, 10}, v1::DT_DOUBLE),
              IsOkAndHolds(ElementsAre(1, 8)));
  // 160 slices wanted, but axis 0 has 4 rows.
  EXPECT_THAT(ComputePartitions(MinMax(500, 0, 100), {4, 1000}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(4, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(500, -1, 100), {4, 1000}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 160)));
}

TEST(MinMaxVariablePartitioner, SmallVariablesStayWhole) {
  EXPECT_THAT(ComputePartitions(MinMax(10), {10, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1)));
  // TensorFlow's max_partitions defaults to 1; the proto's 0 also gives 1.
  EXPECT_THAT(ComputePartitions(MinMax(0), {1024, 1024}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1)));
  EXPECT_THAT(ComputePartitions(MinMax(10), {0, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1)));
}

TEST(MinMaxVariablePartitioner, AxisOutOfRange) {
  EXPECT_THAT(ComputePartitions(MinMax(4, 1), {10}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Can not partition variable along axis 1 when shape is "
                       "only (10,)"));
}

// ---------------------------------------------------------------------------
// variable_axis_size_partitioner:
// slices_per_shard = max(1, floor(max_shard_bytes / bytes_per_slice)),
// partitions[axis] = ceil(shape[axis] / slices_per_shard), capped by
// max_shards.

TEST(VariableAxisSizePartitioner, KeepsShardsUnderMaxBytes) {
  // float32 [100, 10]: one row is 40 bytes.
  EXPECT_THAT(ComputePartitions(AxisSize(400), {100, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(10, 1)));
  EXPECT_THAT(ComputePartitions(AxisSize(399), {100, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(12, 1)));  // 9 rows per shard
  EXPECT_THAT(ComputePartitions(AxisSize(1 << 20), {100, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1)));
}

TEST(VariableAxisSizePartitioner, OneSlicePerShardWhenASliceIsTooBig) {
  EXPECT_THAT(ComputePartitions(AxisSize(10), {100, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(100, 1)));
  EXPECT_THAT(ComputePartitions(AxisSize(10, 0, 7), {100, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(7, 1)));
}

TEST(VariableAxisSizePartitioner, OtherAxesAndDTypes) {
  // float64 [100, 10] along axis 1: one column is 800 bytes.
  EXPECT_THAT(ComputePartitions(AxisSize(2000, 1), {100, 10}, v1::DT_DOUBLE),
              IsOkAndHolds(ElementsAre(1, 5)));
  EXPECT_THAT(ComputePartitions(AxisSize(2000, -1), {100, 10}, v1::DT_DOUBLE),
              IsOkAndHolds(ElementsAre(1, 5)));
  EXPECT_THAT(ComputePartitions(AxisSize(1000, 1), {100, 10}, v1::DT_HALF),
              IsOkAndHolds(ElementsAre(1, 2)));
}

TEST(VariableAxisSizePartitioner, DocstringSuggestedLimit) {
  // (64 << 20) - 1 bytes with 256-byte rows fits 262143 rows, so 2^20 rows
  // need 5 shards, not 4.
  EXPECT_THAT(
      ComputePartitions(AxisSize((64 << 20) - 1), {1 << 20, 64}, v1::DT_FLOAT),
      IsOkAndHolds(ElementsAre(5, 1)));
  EXPECT_THAT(
      ComputePartitions(AxisSize(64 << 20), {1 << 20, 64}, v1::DT_FLOAT),
      IsOkAndHolds(ElementsAre(4, 1)));
}

TEST(VariableAxisSizePartitioner, EmptyVariableIsOneShard) {
  EXPECT_THAT(ComputePartitions(AxisSize(100), {0, 10}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1)));
  EXPECT_THAT(ComputePartitions(AxisSize(100), {10, 0}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 1)));
}

TEST(VariableAxisSizePartitioner, ConstructorErrors) {
  for (int64_t bad : {0, -5}) {
    EXPECT_THAT(ComputePartitions(AxisSize(bad), {100, 10}, v1::DT_FLOAT),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "Both max_shard_bytes and bytes_per_string_element "
                         "must be positive."));
  }
  EXPECT_THAT(ComputePartitions(AxisSize(100, 0, -1), {100, 10}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "max_shards must be positive."));
  // Constructor arguments are checked before the shape, as in TensorFlow.
  EXPECT_THAT(ComputePartitions(AxisSize(0), {-1, 10}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Both max_shard_bytes and bytes_per_string_element "
                       "must be positive."));
}

// ---------------------------------------------------------------------------
// Explicit lists and the checks every partitioner's result goes through.

TEST(ExplicitPartitioner, ReturnsTheGivenList) {
  EXPECT_THAT(ComputePartitions(Explicit({1, 4, 1}), {2, 8, 3}, v1::DT_FLOAT),
              IsOkAndHolds(ElementsAre(1, 4, 1)));
}

TEST(ComputePartitions, ResultChecksUseTensorFlowsTexts) {
  EXPECT_THAT(ComputePartitions(Explicit({3}), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner returned a partition list that does not "
                       "match the Variable's rank: [3] vs. (10, 3)"));
  EXPECT_THAT(ComputePartitions(Explicit({0, 1}), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner returned zero partitions for some axes: "
                       "[0, 1]"));
  EXPECT_THAT(ComputePartitions(Explicit({2, 2}), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Can only slice a variable along one dimension: shape: "
                       "(10, 3), partitioning: [2, 2]"));
  EXPECT_THAT(ComputePartitions(Explicit({11, 1}), {10, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Cannot create 11 slices for size 10. shape: [10, 3], "
                       "slicing: [11, 1]"));
}

// Found by tests/fuzz/table_fuzz: 2^40 parts of no bytes each ran the server
// out of memory.
TEST(ComputePartitions, AtMostMaxPartitionsParts) {
  const int64_t huge = int64_t{1} << 40;
  EXPECT_THAT(ComputePartitions(FixedSize(huge), {huge, 0}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "Cannot create 1099511627776 slices: more than the "
                       "limit of 65536. shape: [1099511627776, 0]"));
  EXPECT_THAT(SlicePartitions("v", {huge, 0}, {kMaxPartitions + 1, 1}),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "Cannot create 65537 slices: more than the limit of "
                       "65536. shape: [1099511627776, 0]"));
  EXPECT_THAT(
      ComputePartitions(Explicit({kMaxPartitions, 1}), {huge, 0}, v1::DT_FLOAT),
      IsOkAndHolds(ElementsAre(kMaxPartitions, 1)));
}

TEST(ComputePartitions, ShapeMustBeFullyDefinedWithRankAtLeastOne) {
  EXPECT_THAT(ComputePartitions(FixedSize(2), {-1, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Shape of a new partitioned variable must be fully "
                       "defined, but instead was (None, 3)."));
  EXPECT_THAT(ComputePartitions(FixedSize(2), {}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A partitioned Variable must have rank at least 1, "
                       "shape: ()"));
  EXPECT_THAT(ComputePartitions(FixedSize(2), {-2, 3}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid shape (None, 3): dimension 0 is -2; dimensions "
                       "must be >= -1 (-1 is unknown)"));
}

TEST(ComputePartitions, RejectsMissingKindAndUnsupportedDType) {
  EXPECT_THAT(ComputePartitions(v1::Partitioner(), {10}, v1::DT_FLOAT),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner has no kind set"));
  EXPECT_THAT(
      ComputePartitions(MinMax(4), {10}, v1::DT_INVALID),
      StatusIs(absl::StatusCode::kInvalidArgument, "Unsupported dtype 0"));
}

// ---------------------------------------------------------------------------
// SlicePartitions.

TEST(SlicePartitions, FirstPartsTakeTheRemainder) {
  VS_ASSERT_OK_AND_ASSIGN(std::vector<PartSlice> parts,
                          SlicePartitions("v", {10, 2}, {3, 1}));
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_THAT(parts[0].offset, ElementsAre(0, 0));
  EXPECT_THAT(parts[0].dims, ElementsAre(4, 2));
  EXPECT_THAT(parts[1].offset, ElementsAre(4, 0));
  EXPECT_THAT(parts[1].dims, ElementsAre(3, 2));
  EXPECT_THAT(parts[2].offset, ElementsAre(7, 0));
  EXPECT_THAT(parts[2].dims, ElementsAre(3, 2));
}

TEST(SlicePartitions, InnerAxis) {
  VS_ASSERT_OK_AND_ASSIGN(std::vector<PartSlice> parts,
                          SlicePartitions("v", {5, 7, 2}, {1, 3, 1}));
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_THAT(parts[0].offset, ElementsAre(0, 0, 0));
  EXPECT_THAT(parts[0].dims, ElementsAre(5, 3, 2));
  EXPECT_THAT(parts[1].offset, ElementsAre(0, 3, 0));
  EXPECT_THAT(parts[1].dims, ElementsAre(5, 2, 2));
  EXPECT_THAT(parts[2].offset, ElementsAre(0, 5, 0));
  EXPECT_THAT(parts[2].dims, ElementsAre(5, 2, 2));
}

TEST(SlicePartitions, NoPartitionedAxisGivesOneWholePart) {
  VS_ASSERT_OK_AND_ASSIGN(std::vector<PartSlice> parts,
                          SlicePartitions("v", {4, 6}, {1, 1}));
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_THAT(parts[0].offset, ElementsAre(0, 0));
  EXPECT_THAT(parts[0].dims, ElementsAre(4, 6));
}

TEST(SlicePartitions, PartsTileTheAxisForEveryCount) {
  for (int64_t dim = 1; dim <= 40; ++dim) {
    for (int64_t n = 1; n <= dim; ++n) {
      VS_ASSERT_OK_AND_ASSIGN(std::vector<PartSlice> parts,
                              SlicePartitions("v", {3, dim}, {1, n}));
      ASSERT_EQ(static_cast<int64_t>(parts.size()), n);
      int64_t next = 0;
      for (int64_t i = 0; i < n; ++i) {
        const PartSlice& p = parts[i];
        ASSERT_EQ(p.offset[0], 0);
        ASSERT_EQ(p.dims[0], 3);
        ASSERT_EQ(p.offset[1], next);
        ASSERT_EQ(p.dims[1], dim / n + (i < dim % n ? 1 : 0));
        next += p.dims[1];
      }
      ASSERT_EQ(next, dim);
    }
  }
}

TEST(SlicePartitions, ComposesWithComputePartitions) {
  VS_ASSERT_OK_AND_ASSIGN(
      std::vector<int64_t> partitions,
      ComputePartitions(AxisSize(399), {100, 10}, v1::DT_FLOAT));
  VS_ASSERT_OK_AND_ASSIGN(std::vector<PartSlice> parts,
                          SlicePartitions("emb", {100, 10}, partitions));
  ASSERT_EQ(parts.size(), 12u);
  // 100 = 12 * 8 + 4: four parts of 9 rows, then eight of 8; each at most
  // 9 rows = 360 bytes <= 399.
  EXPECT_THAT(parts[3].dims, ElementsAre(9, 10));
  EXPECT_THAT(parts[4].offset, ElementsAre(36, 0));
  EXPECT_THAT(parts[4].dims, ElementsAre(8, 10));
  EXPECT_THAT(parts[11].offset, ElementsAre(92, 0));
}

TEST(SlicePartitions, ErrorsUseTensorFlowsTexts) {
  EXPECT_THAT(SlicePartitions("foo/v", {-1, 2}, {2, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Shape of a new partitioned variable (foo/v) must be "
                       "fully defined, but instead was (None, 2)."));
  EXPECT_THAT(SlicePartitions("v", {}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A partitioned Variable must have rank at least 1, "
                       "shape: ()"));
  EXPECT_THAT(SlicePartitions("v", {10, 2}, {2, 1, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner returned a partition list that does not "
                       "match the Variable's rank: [2, 1, 1] vs. (10, 2)"));
  EXPECT_THAT(SlicePartitions("v", {10}, {0}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Partitioner returned zero partitions for some axes: "
                       "[0]"));
  EXPECT_THAT(SlicePartitions("v", {10, 4}, {2, 3}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Can only slice a variable along one dimension: shape: "
                       "(10, 4), partitioning: [2, 3]"));
  EXPECT_THAT(SlicePartitions("v", {10, 4}, {1, 5}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Cannot create 5 slices for size 4. shape: [10, 4], "
                       "slicing: [1, 5]"));
}

}  // namespace
}  // namespace varscope
