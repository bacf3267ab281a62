#include "server/table/variable.h"

#include <sys/mman.h>

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"

namespace varscope::server {
namespace {

// The number of parts of the partitioned variable `slice` is a part of.
int64_t NumParts(const v1::SliceInfo& slice) {
  int64_t n = 1;
  for (const int64_t p : slice.partitions()) n *= p;
  return n;
}

// Huge pages pay off once a buffer spans many of them.
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugeMinBytes = size_t{32} << 20;
// madvise's synchronous collapse (Linux 6.1), missing from glibc 2.36.
constexpr int kAdviseCollapse = 25;

// The whole huge pages inside `data`'s `size` bytes: their start and
// length, a length of 0 if `size` is below kHugeMinBytes.
std::pair<void*, size_t> HugeRange(const char* data, size_t size) {
  if (size < kHugeMinBytes) return {nullptr, 0};
  const uintptr_t start = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (start + size) & ~(kHugePage - 1);
  return {reinterpret_cast<void*>(begin), end - begin};
}

}  // namespace

void AdviseHugePages(std::string& bytes) {
  const auto [begin, length] = HugeRange(bytes.data(), bytes.size());
  // Failures leave the pages as they were: the advice has no other effect.
  if (length == 0 || madvise(begin, length, MADV_HUGEPAGE) != 0) return;
  madvise(begin, length, kAdviseCollapse);
}

std::string CopyOnHugePages(const std::string& bytes) {
  std::string copy;
  copy.reserve(bytes.size());  // allocated, not yet touched
  const auto [begin, length] = HugeRange(copy.data(), bytes.size());
  // As in AdviseHugePages, a failure leaves ordinary pages.
  if (length > 0) madvise(begin, length, MADV_HUGEPAGE);
  copy.append(bytes);
  return copy;
}

TableVariable::TableVariable(v1::StoredVariable m, std::string d)
    : name(m.info().name()),
      dtype(m.info().dtype()),
      dims(m.info().shape().dims().begin(), m.info().shape().dims().end()),
      whole(m.info().has_slice() ? m.info().slice().full_name() : ""),
      part_index(m.info().slice().part_index()),
      num_parts(m.info().has_slice() ? NumParts(m.info().slice()) : 0),
      chunk_bytes(m.chunk_bytes()),
      meta(std::move(m)),
      data(std::make_shared<std::string>(std::move(d))) {
  AdviseHugePages(*data);
}

std::string PartName(absl::string_view name, int64_t i) {
  return absl::StrCat(name, "/part_", i);
}

std::shared_ptr<TableVariable> Lookup(const VariableMap& vars,
                                      absl::string_view name) {
  auto it = vars.find(name);
  return it == vars.end() ? nullptr : it->second;
}

bool PlacedHere(absl::string_view name, int64_t i,
                const v1::PartPlacement* placement) {
  return placement == nullptr ||
         ShardOf(PartName(name, i), placement->shard_count()) ==
             placement->shard_index();
}

absl::StatusOr<std::vector<std::shared_ptr<TableVariable>>> Parts(
    const VariableMap& vars, absl::string_view name,
    const v1::PartPlacement* placement) {
  // Any part gives their number; it sorts among the parts and their slots.
  const std::string prefix = absl::StrCat(name, "/part_");
  int64_t num_parts = 0;
  for (auto it = vars.lower_bound(prefix);
       it != vars.end() && absl::StartsWith(it->first, prefix); ++it) {
    if (it->second->whole == name) {
      num_parts = it->second->num_parts;
      break;
    }
  }
  std::vector<std::shared_ptr<TableVariable>> parts;
  std::vector<std::string> missing;
  for (int64_t i = 0; i < num_parts; ++i) {
    if (!PlacedHere(name, i, placement)) continue;
    std::string part_name = PartName(name, i);
    std::shared_ptr<TableVariable> part = Lookup(vars, part_name);
    if (part != nullptr && part->whole == name) {
      parts.push_back(std::move(part));
    } else {
      missing.push_back(std::move(part_name));
    }
  }
  if (missing.empty()) return parts;
  constexpr size_t kMaxNamed = 10;
  const size_t n = missing.size();
  if (n > kMaxNamed) missing.resize(kMaxNamed);
  return absl::FailedPreconditionError(absl::StrCat(
      "Partitioned variable ", name, " is incomplete: ", n, " of its ",
      num_parts, n == 1 ? " parts is" : " parts are", " missing (",
      absl::StrJoin(missing, ", "), n > kMaxNamed ? ", ..." : "",
      "); restore it from a backup, or delete what is left: varscope rm -r ",
      name));
}

}  // namespace varscope::server
