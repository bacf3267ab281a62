// The contents of one variable while an update batch computes them.
#ifndef VARSCOPE_SERVER_TABLE_WORKING_COPY_H_
#define VARSCOPE_SERVER_TABLE_WORKING_COPY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/types/span.h"
#include "common/dtype.h"
#include "server/storage/storage.h"
#include "server/table/dirty_set.h"

namespace varscope::server {

// Bytes of one row (one index of the first axis; a scalar is one row).
int64_t RowBytes(absl::Span<const int64_t> dims, DType dtype);

// The published bytes of a variable plus private copies of what an update
// batch changed: the whole buffer, or only the chunks it touched (chunks
// hold whole rows, so a row lies in one chunk). Thread-compatible.
class WorkingCopy {
 public:
  // `base` is the published content, laid out in chunks of `chunk_bytes`.
  WorkingCopy(std::shared_ptr<const std::string> base, int64_t row_bytes,
              int64_t chunk_bytes);

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
  // One row for reading or writing; writing copies only its chunk.
  // REQUIRES: 0 <= row < num_rows().
  const char* Row(int64_t row) const;
  char* MutableRow(int64_t row);

  bool changed() const { return whole_.has_value() || !chunks_.empty(); }

  // Sets the CRC-32C of the changed chunks (all of them if the whole
  // changed, or if `meta` has none) in `meta`.
  void UpdateChecksums(v1::StoredVariable& meta) const;

  // Adds the changed chunks (all of them if the whole changed) and `meta` to
  // `batch`.
  void Persist(const v1::StoredVariable& meta, StorageBatch& batch) const;

  // Adds what changed to `dirty` under `name`: the metadata, and every
  // chunk if the whole changed, else the touched chunks.
  void MarkChanged(absl::string_view name, DirtySet& dirty) const;

  // Makes `published` hold the new contents: changes it in place when the
  // caller holds the only reference, else replaces it with a new buffer.
  // REQUIRES: no reader can take a new reference meanwhile. The copy is
  // spent afterwards.
  void Publish(std::shared_ptr<std::string>& published);

 private:
  std::shared_ptr<const std::string> base_;
  const int64_t row_bytes_;
  const int64_t chunk_bytes_;
  std::optional<std::string> whole_;       // set once the whole changed
  std::map<int64_t, std::string> chunks_;  // else: touched chunks by index
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_WORKING_COPY_H_
