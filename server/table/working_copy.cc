#include "server/table/working_copy.h"

#include <cstring>

#include "common/crc32c.h"

namespace varscope::server {

int64_t RowBytes(absl::Span<const int64_t> dims, DType dtype) {
  int64_t row = static_cast<int64_t>(DTypeSize(dtype));
  for (size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  return row;
}

WorkingCopy::WorkingCopy(std::shared_ptr<const std::string> base,
                         int64_t row_bytes, int64_t chunk_bytes)
    : base_(std::move(base)),
      row_bytes_(row_bytes),
      chunk_bytes_(chunk_bytes) {}

const char* WorkingCopy::Whole() {
  if (whole_.has_value()) return whole_->data();
  if (chunks_.empty()) return base_->data();
  return MutableWhole();
}

std::string WorkingCopy::CopyContents() const {
  if (whole_.has_value()) return *whole_;
  std::string contents = *base_;
  for (const auto& [index, bytes] : chunks_) {
    memcpy(contents.data() + index * chunk_bytes_, bytes.data(), bytes.size());
  }
  return contents;
}

char* WorkingCopy::MutableWhole() {
  if (!whole_.has_value()) {
    whole_ = CopyContents();
    chunks_.clear();
  }
  return whole_->data();
}

void WorkingCopy::SetWhole(std::string bytes) {
  whole_ = std::move(bytes);
  chunks_.clear();
}

const char* WorkingCopy::Row(int64_t row) const {
  const int64_t offset = row * row_bytes_;
  if (whole_.has_value()) return whole_->data() + offset;
  auto it = chunks_.find(offset / chunk_bytes_);
  if (it == chunks_.end()) return base_->data() + offset;
  return it->second.data() + offset % chunk_bytes_;
}

char* WorkingCopy::MutableRow(int64_t row) {
  // Empty rows lie in no chunk: a chunk made for one would be extra.
  if (row_bytes_ == 0) return MutableWhole();
  const int64_t offset = row * row_bytes_;
  if (whole_.has_value()) return whole_->data() + offset;
  const int64_t index = offset / chunk_bytes_;
  auto it = chunks_.find(index);
  if (it == chunks_.end()) {
    it = chunks_
             .emplace(index,
                      base_->substr(static_cast<size_t>(index * chunk_bytes_),
                                    static_cast<size_t>(chunk_bytes_)))
             .first;
  }
  return it->second.data() + offset % chunk_bytes_;
}

void WorkingCopy::UpdateChecksums(v1::StoredVariable& meta) const {
  const int64_t chunks = Storage::NumChunks(size(), chunk_bytes_);
  if (whole_.has_value()) {
    ChecksumChunks(*whole_, 0, chunks, meta);
    return;
  }
  if (meta.chunk_crc32c_size() != chunks) {
    ChecksumChunks(CopyContents(), 0, chunks, meta);
    return;
  }
  for (const auto& [index, bytes] : chunks_) {
    meta.set_chunk_crc32c(static_cast<int>(index), Crc32c(bytes));
  }
}

void WorkingCopy::Persist(const v1::StoredVariable& meta,
                          StorageBatch& batch) const {
  batch.PutMeta(meta);
  if (whole_.has_value()) {
    batch.PutChunks(meta, *whole_, 0, Storage::NumChunks(size(), chunk_bytes_));
    return;
  }
  for (const auto& [index, bytes] : chunks_) {
    batch.PutChunk(meta, index, bytes);
  }
}

void WorkingCopy::MarkChanged(absl::string_view name, DirtySet& dirty) const {
  dirty.AddMeta(name);
  if (whole_.has_value()) {
    dirty.AddWhole(name);
    return;
  }
  for (const auto& [index, bytes] : chunks_) dirty.AddChunk(name, index);
}

void WorkingCopy::Publish(std::shared_ptr<std::string>& published) {
  base_.reset();  // so that use_count() counts only the others' references
  if (whole_.has_value()) {
    published = std::make_shared<std::string>(std::move(*whole_));
  } else if (!chunks_.empty()) {
    if (published.use_count() != 1) {
      published = std::make_shared<std::string>(*published);
    }
    for (const auto& [index, bytes] : chunks_) {
      memcpy(published->data() + index * chunk_bytes_, bytes.data(),
             bytes.size());
    }
  }
  whole_.reset();
  chunks_.clear();
}

}  // namespace varscope::server
