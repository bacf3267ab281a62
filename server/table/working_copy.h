// The contents of one variable while an update batch computes them.
#ifndef VARSCOPE_SERVER_TABLE_WORKING_COPY_H_
#define VARSCOPE_SERVER_TABLE_WORKING_COPY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "common/dtype.h"
#include "server/storage/storage.h"
#include "server/table/dirty_set.h"

namespace varscope::server {

// Bytes of one row (one index of the first axis; a scalar is one row).
int64_t RowBytes(absl::Span<const int64_t> dims, DType dtype);

// Whether the store takes a change of `changed_bytes` of rows of a variable
// of `size` bytes as a row record (StorageBatch::PutRows), given the
// `recorded` bytes of row records it may hold for it already; else the
// variable is written whole, which consolidates its records. Records stay
// below the variable's size, so that a restart reads at most twice it.
bool RecordRows(int64_t size, int64_t recorded, int64_t changed_bytes);

// The published bytes of a variable plus private copies of what an update
// batch changed: the whole buffer, or only the rows it touched, so that a
// sparse update costs what it touches. Thread-compatible.
class WorkingCopy {
 public:
  // `base` is the published content.
  WorkingCopy(std::shared_ptr<const std::string> base, int64_t row_bytes);

  int64_t size() const { return static_cast<int64_t>(base_->size()); }
  int64_t row_bytes() const { return row_bytes_; }
  int64_t num_rows() const { return row_bytes_ == 0 ? 0 : size() / row_bytes_; }

  // The current contents for reading: valid until the next mutation.
  const char* Whole();
  // A copy of the current contents.
  std::string CopyContents() const;
  // The whole contents for writing (copies the base on first use).
  char* MutableWhole();
  // Replaces the whole contents. REQUIRES: bytes.size() == size().
  void SetWhole(std::string bytes);
  // One row for reading or writing; writing copies only that row. The
  // pointer stays valid until the next call that copies a row or the whole.
  // REQUIRES: 0 <= row < num_rows().
  const char* Row(int64_t row) const;
  char* MutableRow(int64_t row);
  // Copies `rows` for writing, as MutableRow one by one would, with the
  // reads of the published rows overlapped: a sparse update touches rows
  // scattered over a large buffer, and waiting for each row's memory in
  // turn was most of its cost. REQUIRES: each 0 <= row < num_rows().
  void CopyRows(absl::Span<const int64_t> rows);

  bool changed() const { return whole_.has_value() || !changed_rows_.empty(); }
  bool whole_changed() const { return whole_.has_value(); }
  // The bytes of the changed rows with their indices (a row record's).
  int64_t changed_row_bytes() const {
    return static_cast<int64_t>(changed_rows_.size()) * (8 + row_bytes_);
  }

  // Adds what changed to `batch`: the variable whole (deleting its row
  // records if `has_row_records`, the store may hold some) if the whole
  // changed, else a row record of the changed rows with `meta`'s info.
  void Persist(const v1::StoredVariable& meta, bool has_row_records,
               StorageBatch& batch) const;

  // Adds what changed to `dirty` under `name`: the metadata, and the whole
  // or the changed rows.
  void MarkChanged(absl::string_view name, DirtySet& dirty) const;

  // Makes `published` hold the new contents: changes it in place when the
  // caller holds the only reference, else replaces it with a new buffer.
  // REQUIRES: no reader can take a new reference meanwhile. The copy is
  // spent afterwards.
  void Publish(std::shared_ptr<std::string>& published);

 private:
  // The copy of the i-th changed row.
  char* RowCopy(size_t i) { return row_copies_.data() + i * row_bytes_; }
  const char* RowCopy(size_t i) const {
    return row_copies_.data() + i * row_bytes_;
  }
  // Forgets the changed rows.
  void ClearRows();

  std::shared_ptr<const std::string> base_;
  const int64_t row_bytes_;
  std::optional<std::string> whole_;  // set once the whole changed
  // Else the changed rows, in the order they were first changed, their
  // copies back to back in that order, and each one's place in it.
  std::vector<int64_t> changed_rows_;
  std::string row_copies_;
  absl::flat_hash_map<int64_t, size_t> row_place_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_WORKING_COPY_H_
