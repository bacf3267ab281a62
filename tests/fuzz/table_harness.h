// A VariableTable over a real Storage in a fresh temporary directory whose
// every call checks what the fuzz targets hold the server to: no crash; an
// error has a code DESIGN.md §4 gives that call, never INTERNAL or UNKNOWN;
// a failed call changes nothing; every variable reads back whole and as
// Stat and List describe it; and a closed and reopened store holds exactly
// what the table held. A broken invariant aborts (FuzzFail).
#ifndef VARSCOPE_TESTS_FUZZ_TABLE_HARNESS_H_
#define VARSCOPE_TESTS_FUZZ_TABLE_HARNESS_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/storage/storage.h"
#include "server/table/variable_table.h"
#include "tests/fuzz/fuzz_requests.h"

namespace varscope::fuzz {

// Thread-compatible.
class TableHarness {
 public:
  // In the interval mode the table writes to the store only on Flush and
  // when closed.
  explicit TableHarness(bool interval);
  // Closes the table and the store and removes the directory.
  ~TableHarness();
  TableHarness(const TableHarness&) = delete;
  TableHarness& operator=(const TableHarness&) = delete;

  // The table's calls, each checked.
  void GetVariable(const v1::GetVariableRequest& request);
  void BatchUpdate(const v1::BatchUpdateRequest& request);
  void Read(absl::string_view name);
  void Stat(absl::string_view name);
  void Gather(const v1::GatherRequest& request);
  void List(const v1::ListVariablesRequest& request);
  void BatchRead(const v1::BatchReadRequest& request);
  void Delete(absl::string_view name, bool recursive);
  void Rename(absl::string_view old_name, absl::string_view new_name);
  void Flush();
  // Closes the table and the store, opens them again from the directory and
  // checks that every variable is exactly as before.
  void Reopen();

  // The variables as of the last call.
  const std::vector<KnownVariable>& known() const { return known_; }

 private:
  struct Stored {
    v1::VariableInfo info;
    std::string bytes;
  };
  using Snapshot = std::map<std::string, Stored>;

  void Open();
  // Every variable, each checked for consistency.
  Snapshot Take();
  // Checks `status` of call `op` against `allowed`; an error must leave the
  // table as it was, but for new variables `may_appear` accepts. Returns the
  // table's state after the call.
  Snapshot Check(
      absl::string_view op, const absl::Status& status,
      std::initializer_list<absl::StatusCode> allowed,
      const std::function<bool(const std::string&)>& may_appear = nullptr);
  void SetState(Snapshot state);

  const bool interval_;
  std::string dir_;
  std::unique_ptr<server::Storage> storage_;
  std::unique_ptr<server::VariableTable> table_;
  Snapshot state_;
  std::vector<KnownVariable> known_;
};

}  // namespace varscope::fuzz

#endif  // VARSCOPE_TESTS_FUZZ_TABLE_HARNESS_H_
