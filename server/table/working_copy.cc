#include "server/table/working_copy.h"

#include <cstring>

#include "absl/base/internal/endian.h"

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
  if (rows_.empty()) return base_->data();
  return MutableWhole();
}

std::string WorkingCopy::CopyContents() const {
  if (whole_.has_value()) return *whole_;
  std::string contents = *base_;
  for (const auto& [row, bytes] : rows_) {
    memcpy(contents.data() + row * row_bytes_, bytes.data(), bytes.size());
  }
  return contents;
}

char* WorkingCopy::MutableWhole() {
  if (!whole_.has_value()) {
    whole_ = CopyContents();
    rows_.clear();
  }
  return whole_->data();
}

void WorkingCopy::SetWhole(std::string bytes) {
  whole_ = std::move(bytes);
  rows_.clear();
}

const char* WorkingCopy::Row(int64_t row) const {
  const int64_t offset = row * row_bytes_;
  if (whole_.has_value()) return whole_->data() + offset;
  auto it = rows_.find(row);
  if (it == rows_.end()) return base_->data() + offset;
  return it->second.data();
}

char* WorkingCopy::MutableRow(int64_t row) {
  // Empty rows have no bytes to record.
  if (row_bytes_ == 0) return MutableWhole();
  if (whole_.has_value()) return whole_->data() + row * row_bytes_;
  auto it = rows_.find(row);
  if (it == rows_.end()) {
    it = rows_
             .emplace(row, base_->substr(static_cast<size_t>(row * row_bytes_),
                                         static_cast<size_t>(row_bytes_)))
             .first;
  }
  return it->second.data();
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
  for (const auto& [row, bytes] : rows_) {
    absl::little_endian::Store64(p, static_cast<uint64_t>(row));
    memcpy(p + 8, bytes.data(), bytes.size());
    p += 8 + bytes.size();
  }
  batch.PutRows(meta.info(), row_bytes_, std::move(rows));
}

void WorkingCopy::MarkChanged(absl::string_view name, DirtySet& dirty) const {
  dirty.AddMeta(name);
  if (whole_.has_value()) {
    dirty.AddWhole(name);
    return;
  }
  for (const auto& [row, bytes] : rows_) dirty.AddRow(name, row);
}

void WorkingCopy::Publish(std::shared_ptr<std::string>& published) {
  base_.reset();  // so that use_count() counts only the others' references
  if (whole_.has_value()) {
    published = std::make_shared<std::string>(std::move(*whole_));
  } else if (!rows_.empty()) {
    if (published.use_count() != 1) {
      published = std::make_shared<std::string>(*published);
    }
    for (const auto& [row, bytes] : rows_) {
      memcpy(published->data() + row * row_bytes_, bytes.data(), bytes.size());
    }
  }
  whole_.reset();
  rows_.clear();
}

}  // namespace varscope::server
