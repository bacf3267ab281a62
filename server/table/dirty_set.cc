#include "server/table/dirty_set.h"

#include <algorithm>
#include <utility>

namespace varscope::server {
namespace {

template <typename Map>
typename Map::mapped_type& Entry(Map& map, absl::string_view key) {
  auto it = map.find(key);
  if (it == map.end()) it = map.try_emplace(std::string(key)).first;
  return it->second;
}

}  // namespace

void DirtySet::AddMeta(absl::string_view name) { Entry(variables, name); }

void DirtySet::AddRow(absl::string_view name, int64_t row) {
  Variable& v = Entry(variables, name);
  if (!v.whole) v.rows.insert(row);
}

void DirtySet::AddWhole(absl::string_view name) {
  Variable& v = Entry(variables, name);
  v.whole = true;
  v.rows.clear();
}

void DirtySet::AddReset(absl::string_view name) {
  AddWhole(name);
  Entry(variables, name).reset = true;
}

void DirtySet::AddApplied(absl::string_view client_id, int64_t sequence,
                          std::optional<std::string> result) {
  Entry(clients, client_id).records[sequence] = std::move(result);
}

void DirtySet::AddIntent(absl::string_view client_id, int64_t sequence,
                         std::shared_ptr<const std::string> intent) {
  Entry(clients, client_id).intents[sequence] = std::move(intent);
}

void DirtySet::Merge(DirtySet newer) {
  for (auto& [name, v] : newer.variables) {
    Variable& mine = Entry(variables, name);
    mine.reset = mine.reset || v.reset;
    mine.whole = mine.whole || v.whole;
    if (mine.whole) {
      mine.rows.clear();
    } else if (mine.rows.empty()) {
      mine.rows = std::move(v.rows);
    } else {
      mine.rows.insert(v.rows.begin(), v.rows.end());
    }
  }
  for (auto& [id, c] : newer.clients) {
    Client& mine = Entry(clients, id);
    for (auto& [sequence, record] : c.records) {
      mine.records[sequence] = std::move(record);
    }
    for (auto& [sequence, intent] : c.intents) {
      mine.intents[sequence] = std::move(intent);
    }
  }
}

void DirtySet::MarkFailed() {
  for (auto& [name, v] : variables) {
    v.reset = true;
    v.whole = true;
    v.rows.clear();
  }
  // Deletions are left alone, writes turned into deletions.
  const auto undo = [](auto& kept) {
    absl::erase_if(kept, [](const auto& r) { return !r.second; });
    for (auto& [sequence, record] : kept) record = {};
  };
  for (auto& [id, c] : clients) {
    undo(c.records);
    undo(c.intents);
  }
}

}  // namespace varscope::server
