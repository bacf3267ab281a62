// Shapes as TensorFlow's TensorShape sees them: a shape may have no known
// rank at all (Python `shape=None`) or unknown dimensions (-1, Python None).
#ifndef VARSCOPE_COMMON_SHAPE_H_
#define VARSCOPE_COMMON_SHAPE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace varscope {

// A value type; thread-compatible.
class Shape {
 public:
  // The scalar shape ().
  Shape() : dims_(std::vector<int64_t>{}) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}
  // No shape at all: compatible with every shape.
  static Shape Unknown() { return Shape(std::nullopt); }

  bool has_rank() const { return dims_.has_value(); }
  // REQUIRES: has_rank().
  const std::vector<int64_t>& dims() const { return *dims_; }
  // REQUIRES: has_rank().
  int rank() const { return static_cast<int>(dims_->size()); }

  // True when the rank and every dimension are known.
  bool IsFullyDefined() const;
  // TensorFlow's rule: unknown rank matches anything; otherwise the ranks are
  // equal and each pair of dimensions is equal or has an unknown (-1) side.
  bool IsCompatibleWith(const Shape& other) const;
  // As TensorFlow prints shapes: "<unknown>", "()", "(10,)", "(None, 2)".
  std::string ToString() const;

  friend bool operator==(const Shape& a, const Shape& b) = default;

 private:
  explicit Shape(std::optional<std::vector<int64_t>> dims)
      : dims_(std::move(dims)) {}
  std::optional<std::vector<int64_t>> dims_;
};

// The largest number of elements a tensor may have (2^50).
inline constexpr int64_t kMaxElements = int64_t{1} << 50;

// Checks that every dimension is >= -1 and, when `allow_unknown` is false,
// >= 0. Returns INVALID_ARGUMENT naming the bad dimension.
absl::Status ValidateDims(absl::Span<const int64_t> dims, bool allow_unknown);

// The product of `dims`. REQUIRES: dims are >= 0. Returns INVALID_ARGUMENT if
// it exceeds kMaxElements.
absl::StatusOr<int64_t> NumElements(absl::Span<const int64_t> dims);

// TensorFlow's format for a fully known shape, e.g. "(10, 2)".
std::string ShapeString(absl::Span<const int64_t> dims);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_SHAPE_H_
