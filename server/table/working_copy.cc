#include "server/table/working_copy.h"

#include <algorithm>
#include <cstring>

#include "absl/base/internal/endian.h"
#include "server/table/variable.h"

namespace varscope::server {

int64_t RowBytes(absl::Span<const int64_t> dims, DType dtype) {
  int64_t row = static_cast<int64_t>(DTypeSize(dtype));
  for (size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  return row;
}

bool RecordRows(int64_t size, int64_t recorded, int64_t changed_bytes) {
  return changed_bytes * 2 < size && recorded + changed_bytes <= size;
}

WorkingCopy::WorkingCopy(std::shared_ptr<const std::string> base,
                         int64_t row_bytes)
    : base_(std::move(base)), row_bytes_(row_bytes) {}

const char* WorkingCopy::Whole() {
  if (whole_.has_value()) return whole_->data();
  if (changed_rows_.empty()) return base_->data();
  return MutableWhole();
}

std::string WorkingCopy::CopyContents() const {
  if (whole_.has_value()) return *whole_;
  std::string contents = CopyOnHugePages(*base_);
  for (size_t i = 0; i < changed_rows_.size(); ++i) {
    memcpy(contents.data() + changed_rows_[i] * row_bytes_, RowCopy(i),
           static_cast<size_t>(row_bytes_));
  }
  return contents;
}

char* WorkingCopy::MutableWhole() {
  if (!whole_.has_value()) {
    whole_ = CopyContents();
    ClearRows();
  }
  return whole_->data();
}

void WorkingCopy::SetWhole(std::string bytes) {
  AdviseHugePages(bytes);  // here, not under the lock Publish runs under
  whole_ = std::move(bytes);
  ClearRows();
}

void WorkingCopy::ClearRows() {
  changed_rows_.clear();
  row_copies_.clear();
  row_place_.clear();
}

const char* WorkingCopy::Row(int64_t row) const {
  const int64_t offset = row * row_bytes_;
  if (whole_.has_value()) return whole_->data() + offset;
  auto it = row_place_.find(row);
  if (it == row_place_.end()) return base_->data() + offset;
  return RowCopy(it->second);
}

char* WorkingCopy::MutableRow(int64_t row) {
  // Empty rows have no bytes to record.
  if (row_bytes_ == 0) return MutableWhole();
  if (whole_.has_value()) return whole_->data() + row * row_bytes_;
  const auto [it, added] = row_place_.try_emplace(row, changed_rows_.size());
  if (added) {
    changed_rows_.push_back(row);
    row_copies_.append(base_->data() + row * row_bytes_,
                       static_cast<size_t>(row_bytes_));
  }
  return RowCopy(it->second);
}

void WorkingCopy::CopyRows(absl::Span<const int64_t> rows) {
  if (row_bytes_ == 0 || whole_.has_value()) return;
  row_place_.reserve(row_place_.size() + rows.size());
  changed_rows_.reserve(changed_rows_.size() + rows.size());
  row_copies_.reserve(row_copies_.size() + rows.size() * row_bytes_);
  // Asks for the rows a few places ahead while copying this one, so that
  // their memory arrives meanwhile; the first cache lines of a row suffice
  // (the hardware fetches a long row's next lines itself).
  constexpr size_t kAhead = 8;
  constexpr int64_t kLine = 64;
  const int64_t prefetched = std::min<int64_t>(row_bytes_, 4 * kLine);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i + kAhead < rows.size()) {
      const char* ahead = base_->data() + rows[i + kAhead] * row_bytes_;
      for (int64_t b = 0; b < prefetched; b += kLine) {
        __builtin_prefetch(ahead + b);
      }
    }
    MutableRow(rows[i]);
  }
}

void WorkingCopy::Persist(const v1::StoredVariable& meta, bool has_row_records,
                          StorageBatch& batch) const {
  if (whole_.has_value()) {
    if (has_row_records) batch.DeleteRows(meta.info().name());
    batch.PutVariable(meta, *whole_);
    return;
  }
  std::string rows(static_cast<size_t>(changed_row_bytes()), '\0');
  char* p = rows.data();
  for (size_t i = 0; i < changed_rows_.size(); ++i) {
    absl::little_endian::Store64(p, static_cast<uint64_t>(changed_rows_[i]));
    memcpy(p + 8, RowCopy(i), static_cast<size_t>(row_bytes_));
    p += 8 + row_bytes_;
  }
  batch.PutRows(meta.info(), row_bytes_, std::move(rows));
}

void WorkingCopy::MarkChanged(absl::string_view name, DirtySet& dirty) const {
  dirty.AddMeta(name);
  if (whole_.has_value()) {
    dirty.AddWhole(name);
    return;
  }
  for (const int64_t row : changed_rows_) dirty.AddRow(name, row);
}

void WorkingCopy::Publish(std::shared_ptr<std::string>& published) {
  base_.reset();  // so that use_count() counts only the others' references
  if (whole_.has_value()) {
    published = std::make_shared<std::string>(std::move(*whole_));
  } else if (!changed_rows_.empty()) {
    if (published.use_count() != 1) {
      published = std::make_shared<std::string>(CopyOnHugePages(*published));
    }
    for (size_t i = 0; i < changed_rows_.size(); ++i) {
      memcpy(published->data() + changed_rows_[i] * row_bytes_, RowCopy(i),
             static_cast<size_t>(row_bytes_));
    }
  }
  whole_.reset();
  ClearRows();
}

}  // namespace varscope::server
