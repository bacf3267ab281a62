#include "common/shape.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace varscope {

bool Shape::IsFullyDefined() const {
  if (!has_rank()) return false;
  for (int64_t d : *dims_) {
    if (d < 0) return false;
  }
  return true;
}

bool Shape::IsCompatibleWith(const Shape& other) const {
  if (!has_rank() || !other.has_rank()) return true;
  if (rank() != other.rank()) return false;
  for (int i = 0; i < rank(); ++i) {
    const int64_t a = (*dims_)[i], b = (*other.dims_)[i];
    if (a >= 0 && b >= 0 && a != b) return false;
  }
  return true;
}

std::string Shape::ToString() const {
  if (!has_rank()) return "<unknown>";
  std::vector<std::string> parts;
  parts.reserve(dims_->size());
  for (int64_t d : *dims_) {
    parts.push_back(d < 0 ? "None" : absl::StrCat(d));
  }
  if (parts.size() == 1) return absl::StrCat("(", parts[0], ",)");
  return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
}

absl::Status ValidateDims(absl::Span<const int64_t> dims, bool allow_unknown) {
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t min = allow_unknown ? -1 : 0;
    if (dims[i] < min) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Invalid shape ",
          Shape(std::vector<int64_t>(dims.begin(), dims.end())).ToString(),
          ": dimension ", i, " is ", dims[i], "; dimensions must be >= ", min,
          allow_unknown ? " (-1 is unknown)" : ""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> NumElements(absl::Span<const int64_t> dims) {
  for (int64_t d : dims) {
    if (d == 0) return 0;
  }
  int64_t n = 1;
  for (int64_t d : dims) {
    if (n > kMaxElements / d) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Shape ", ShapeString(dims), " has more than 2^50 elements"));
    }
    n *= d;
  }
  return n;
}

std::string ShapeString(absl::Span<const int64_t> dims) {
  return Shape(std::vector<int64_t>(dims.begin(), dims.end())).ToString();
}

}  // namespace varscope
