// One variable of the table, with its locks, and the map of them by name.
#ifndef VARSCOPE_SERVER_TABLE_VARIABLE_H_
#define VARSCOPE_SERVER_TABLE_VARIABLE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/dtype.h"
#include "varscope/v1/storage.pb.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// Asks the kernel to back `bytes`, if large, with transparent huge pages
// (collapsing the pages it holds already): a sparse update or gather
// touches rows scattered over the whole buffer, and with 4 KiB pages
// nearly every row costs a TLB miss and a page walk. Advice only: where the
// kernel has no huge pages to give (disabled, or no MADV_COLLAPSE before
// Linux 6.1) the buffer stays as it is, as it would without the call.
void AdviseHugePages(std::string& bytes);

// A copy of `bytes` that is born on huge pages where the kernel offers
// them (see AdviseHugePages), without a collapse afterwards.
std::string CopyOnHugePages(const std::string& bytes);

// A variable's metadata and bytes. Thread-safe: two locks, write_mu for
// its one writer and mu for its published state.
struct TableVariable {
  TableVariable(v1::StoredVariable m, std::string d);

  v1::VariableInfo Info() const ABSL_LOCKS_EXCLUDED(mu) {
    absl::ReaderMutexLock l(&mu);
    return meta.info();
  }

  // The published bytes and version. The bytes never change while held.
  std::pair<std::shared_ptr<const std::string>, int64_t> Snapshot() const
      ABSL_LOCKS_EXCLUDED(mu) {
    absl::ReaderMutexLock l(&mu);
    return {data, meta.info().version()};
  }

  const std::string name;
  const DType dtype;
  const std::vector<int64_t> dims;
  // For a part of a partitioned variable: the whole's name, this part's
  // index and the number of parts. Else "", 0, 0.
  const std::string whole;
  const int64_t part_index;
  const int64_t num_parts;
  const int64_t chunk_bytes;
  // The bytes of row records (StorageBatch::PutRows) the store may hold for
  // it: raised before a record's store write, zeroed after a whole write
  // that deleted them succeeded. A whole write deletes them while it is
  // not 0; it also decides when records are consolidated (RecordRows).
  std::atomic<int64_t> row_record_bytes{0};

  // Held by the one writer of this variable from reading its state until the
  // store write is done, so the store sees this variable's writes in order.
  absl::Mutex write_mu;
  bool deleted ABSL_GUARDED_BY(write_mu) = false;
  // Guards the published state; held only to take or publish it. Readers
  // take a reference to `data`; a writer changes it in place only while it
  // holds the only reference.
  mutable absl::Mutex mu ABSL_ACQUIRED_AFTER(write_mu);
  v1::StoredVariable meta ABSL_GUARDED_BY(mu);
  std::shared_ptr<std::string> data ABSL_GUARDED_BY(mu);
};

// Variables by name. Thread-compatible (the table guards it).
using VariableMap =
    absl::btree_map<std::string, std::shared_ptr<TableVariable>, std::less<>>;

// The name of part `i` of the partitioned variable `name`.
std::string PartName(absl::string_view name, int64_t i);

// The variable called `name`, or nullptr.
std::shared_ptr<TableVariable> Lookup(const VariableMap& vars,
                                      absl::string_view name);

// Whether part `i` of the partitioned variable `name` belongs on this
// server under `placement` (nullptr: every part does).
bool PlacedHere(absl::string_view name, int64_t i,
                const v1::PartPlacement* placement);

// The parts of the partitioned variable `name` that belong here under
// `placement` (see PlacedHere) in order, none if no part of it exists,
// FAILED_PRECONDITION naming the missing ones if only some do.
absl::StatusOr<std::vector<std::shared_ptr<TableVariable>>> Parts(
    const VariableMap& vars, absl::string_view name,
    const v1::PartPlacement* placement = nullptr);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_VARIABLE_H_
