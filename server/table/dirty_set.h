// Which stored records changes touched: what the interval mode writes at its
// next flush, and what is rewritten after a failed store write.
#ifndef VARSCOPE_SERVER_TABLE_DIRTY_SET_H_
#define VARSCOPE_SERVER_TABLE_DIRTY_SET_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace varscope::server {

// Thread-compatible.
struct DirtySet {
  struct Variable {
    // Delete every stored record of the name before writing what the table
    // holds (it was created, deleted or renamed). Implies `whole`.
    bool reset = false;
    // Write every chunk; else the metadata and `rows` (a row record).
    bool whole = false;
    absl::flat_hash_set<int64_t> rows;
  };
  struct Client {
    // Exactly-once records by sequence: the serialized result to write, or
    // nullopt to delete it.
    absl::btree_map<int64_t, std::optional<std::string>> records;
    // Intents (see Intents), alike: the serialized v1::Intent or nullptr.
    absl::btree_map<int64_t, std::shared_ptr<const std::string>> intents;
  };

  // The variable's metadata changed.
  void AddMeta(absl::string_view name);
  // The variable's metadata and row `row` changed.
  void AddRow(absl::string_view name, int64_t row);
  // The variable's metadata and every chunk changed.
  void AddWhole(absl::string_view name);
  // The name was created, deleted or renamed.
  void AddReset(absl::string_view name);
  // An update was recorded with `result` (nullopt: its record is to go).
  void AddApplied(absl::string_view client_id, int64_t sequence,
                  std::optional<std::string> result);

  // An intent was stored (nullptr: forgotten).
  void AddIntent(absl::string_view client_id, int64_t sequence,
                 std::shared_ptr<const std::string> intent);

  // Adds the changes of `newer`, which happened after this set's.
  void Merge(DirtySet newer);

  // Turns the changes of a store write that failed, which may or may not
  // have reached the disk, into what undoes them there: every variable
  // rewritten whole as the table holds it, every exactly-once record it
  // or intent it added deleted (and those it deleted left alone).
  void MarkFailed();

  bool empty() const { return variables.empty() && clients.empty(); }

  absl::btree_map<std::string, Variable, std::less<>> variables;
  absl::btree_map<std::string, Client, std::less<>> clients;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_DIRTY_SET_H_
