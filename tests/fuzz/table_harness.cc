#include "tests/fuzz/table_harness.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/names.h"
#include "common/shape.h"
#include "server/table/optimizers.h"

namespace varscope::fuzz {
namespace {

using Code = absl::StatusCode;

std::string Describe(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                      status.message().substr(0, 300));
}

template <typename T>
T Expect(absl::string_view what, absl::StatusOr<T> result) {
  if (!result.ok()) {
    FuzzFail(absl::StrCat(what, " failed: ", Describe(result.status())));
  }
  return *std::move(result);
}

void Require(bool ok, absl::string_view what) {
  if (!ok) FuzzFail(what);
}

// Field by field, bit for bit (a NaN initializer argument equals itself).
bool SameInfo(const v1::VariableInfo& a, const v1::VariableInfo& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

}  // namespace

TableHarness::TableHarness(bool interval) : interval_(interval) {
  const char* tmp = getenv("TMPDIR");
  std::string pattern = absl::StrCat(
      tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/varscope-fuzz-XXXXXX");
  Require(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
  dir_ = pattern;
  Open();
  SetState(Take());
}

TableHarness::~TableHarness() {
  table_.reset();
  storage_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void TableHarness::Open() {
  storage_ = Expect("Storage::Open", server::Storage::Open({}, dir_));
  server::TableOptions options;
  options.max_variable_bytes = 1 << 12;  // small variables, quick inputs
  options.chunk_bytes = 64;              // several chunks per variable
  if (interval_) {
    options.durability.mode = server::Durability::Mode::kInterval;
    options.durability.interval = absl::Hours(1);  // flushes by hand
  }
  table_ = Expect("VariableTable::Load",
                  server::VariableTable::Load(options, storage_.get()));
}

TableHarness::Snapshot TableHarness::Take() {
  Snapshot snapshot;
  int64_t total_bytes = 0;
  v1::ListVariablesRequest list;
  list.set_recursive(true);
  do {
    v1::ListVariablesResponse page = Expect("List", table_->List(list));
    for (const v1::ListVariablesResponse::Entry& entry : page.entries()) {
      const std::string& name = entry.name();
      Require(!entry.is_scope() && entry.variable().name() == name,
              absl::StrCat("a recursive listing has scope or misnamed entry ",
                           entry.ShortDebugString()));
      Require(ValidateName(name).ok(), absl::StrCat("listed bad name ", name));
      const v1::VariableInfo stat = Expect("Stat", table_->Stat(name));
      Require(SameInfo(stat, entry.variable()),
              absl::StrCat("Stat of ", name, " is ", stat.ShortDebugString(),
                           " but List gives ",
                           entry.variable().ShortDebugString()));
      ReadResult read = Expect("Read", table_->Read(name));
      const std::vector<int64_t> dims(stat.shape().dims().begin(),
                                      stat.shape().dims().end());
      const int64_t elements = Expect("NumElements", NumElements(dims));
      const int64_t bytes = static_cast<int64_t>(read.value.bytes().size());
      Require(read.value.dtype() == stat.dtype() && read.value.dims() == dims &&
                  read.version == stat.version(),
              absl::StrCat("Read of ", name, " disagrees with its metadata ",
                           stat.ShortDebugString()));
      Require(
          bytes == elements * static_cast<int64_t>(DTypeSize(stat.dtype())) &&
              bytes == stat.byte_size(),
          absl::StrCat("variable ", name, " holds ", bytes,
                       " bytes for its metadata ", stat.ShortDebugString()));
      Require(!snapshot.contains(name), absl::StrCat("listed twice: ", name));
      total_bytes += bytes;
      snapshot[name] = Stored{stat, read.value.ReleaseBytes()};
    }
    list.set_page_token(page.next_page_token());
  } while (!list.page_token().empty());

  const auto all = Expect("BatchRead", table_->BatchRead({}));
  Require(all.size() == snapshot.size(),
          absl::StrCat("BatchRead of everything gives ", all.size(),
                       " variables, List ", snapshot.size()));
  for (const auto& [name, value] : all) {
    auto it = snapshot.find(name);
    Require(it != snapshot.end() && *value.bytes == it->second.bytes &&
                value.version == it->second.info.version(),
            absl::StrCat("BatchRead and Read disagree on ", name));
  }
  const server::VariableTable::Totals totals = table_->GetTotals();
  Require(
      totals.variables == static_cast<int64_t>(snapshot.size()) &&
          totals.bytes == total_bytes,
      absl::StrCat("totals ", totals.variables, " variables, ", totals.bytes,
                   " bytes; listed ", snapshot.size(), ", ", total_bytes));
  return snapshot;
}

namespace {

// The first difference between two snapshots, or "".
template <typename Snapshot>
std::string Difference(const Snapshot& before, const Snapshot& after) {
  for (const auto& [name, stored] : before) {
    auto it = after.find(name);
    if (it == after.end()) return absl::StrCat(name, " is gone");
    if (!SameInfo(stored.info, it->second.info)) {
      return absl::StrCat(name, " was ", stored.info.ShortDebugString(),
                          " and is ", it->second.info.ShortDebugString());
    }
    if (stored.bytes != it->second.bytes) {
      return absl::StrCat(name, "'s bytes changed");
    }
  }
  for (const auto& [name, stored] : after) {
    if (!before.contains(name)) return absl::StrCat(name, " appeared");
  }
  return "";
}

}  // namespace

TableHarness::Snapshot TableHarness::Check(
    absl::string_view op, const absl::Status& status,
    std::initializer_list<Code> allowed,
    const std::function<bool(const std::string&)>& may_appear) {
  if (!status.ok()) {
    Require(std::find(allowed.begin(), allowed.end(), status.code()) !=
                allowed.end(),
            absl::StrCat(op, " returned a code not expected for it: ",
                         Describe(status)));
    Require(!status.message().empty(),
            absl::StrCat(op, " returned an error without a message"));
  }
  Snapshot after = Take();
  if (!status.ok()) {
    Snapshot kept = after;
    std::erase_if(kept, [&](const auto& entry) {
      return may_appear && !state_.contains(entry.first) &&
             may_appear(entry.first);
    });
    const std::string changed = Difference(state_, kept);
    Require(changed.empty(),
            absl::StrCat(op, " failed (", Describe(status),
                         ") but changed the table: ", changed));
  }
  return after;
}

void TableHarness::SetState(Snapshot state) {
  state_ = std::move(state);
  known_.clear();
  for (const auto& [name, stored] : state_) {
    known_.push_back(
        KnownVariable{name, stored.info.dtype(),
                      std::vector<int64_t>(stored.info.shape().dims().begin(),
                                           stored.info.shape().dims().end()),
                      stored.info.version()});
  }
}

void TableHarness::GetVariable(const v1::GetVariableRequest& request) {
  absl::StatusOr<v1::GetVariableResponse> result = table_->GetVariable(request);
  Snapshot after =
      Check("GetVariable", result.status(),
            {Code::kInvalidArgument, Code::kAlreadyExists, Code::kNotFound,
             Code::kResourceExhausted, Code::kFailedPrecondition});
  if (result.ok()) {
    Require(result->variable().name() == request.name(),
            absl::StrCat("GetVariable of ", request.name(), " returned ",
                         result->variable().name()));
    for (const v1::VariableInfo& part : result->parts()) {
      Require(after.contains(part.name()),
              absl::StrCat("GetVariable returned missing part ", part.name()));
    }
    Require(result->parts_size() > 0 || after.contains(request.name()),
            absl::StrCat("GetVariable returned missing ", request.name()));
    if (!result->created()) {
      const std::string changed = Difference(state_, after);
      Require(
          changed.empty(),
          absl::StrCat("GetVariable created nothing but changed ", changed));
    }
  }
  SetState(std::move(after));
}

void TableHarness::BatchUpdate(const v1::BatchUpdateRequest& request) {
  absl::StatusOr<v1::BatchUpdateResponse> result = table_->BatchUpdate(request);
  // A batch with optimizer steps creates the missing slots of their
  // variables (with their initial values, named after each optimizer's name)
  // before its checks, so they stay when it fails (see
  // VariableTable::BatchUpdate).
  auto is_new_slot = [&](const std::string& name) {
    for (const v1::Update& update : request.updates()) {
      if (!update.has_apply_gradient()) continue;
      absl::StatusOr<server::OptimizerStep> step =
          server::OptimizerStep::Resolve(update.apply_gradient().optimizer());
      if (!step.ok()) continue;
      for (const server::SlotSpec& slot : step->slots()) {
        if (name == JoinName(update.name(), slot.suffix)) return true;
      }
    }
    return false;
  };
  Snapshot after = Check(
      "BatchUpdate", result.status(),
      {Code::kInvalidArgument, Code::kAborted, Code::kNotFound}, is_new_slot);
  // A duplicate returns the first result of its id, whatever it asks now.
  if (result.ok() && !result->duplicate()) {
    Require(result->versions_size() == request.updates_size(),
            "BatchUpdate returned a version count unlike its updates'");
    for (int i = 0; i < request.updates_size(); ++i) {
      const std::string& name = request.updates(i).name();
      Require(after.contains(name) &&
                  after[name].info.version() == result->versions(i),
              absl::StrCat("BatchUpdate returned version ", result->versions(i),
                           " of ", name, " unlike the table's"));
    }
  }
  if (result.ok() && result->duplicate()) {
    const std::string changed = Difference(state_, after);
    Require(changed.empty(),
            absl::StrCat("a duplicate BatchUpdate changed ", changed));
  }
  SetState(std::move(after));
}

void TableHarness::Read(absl::string_view name) {
  absl::Status status = table_->Read(name).status();
  SetState(Check("Read", status, {Code::kInvalidArgument, Code::kNotFound}));
}

void TableHarness::Stat(absl::string_view name) {
  absl::Status status = table_->Stat(name).status();
  SetState(Check("Stat", status, {Code::kInvalidArgument, Code::kNotFound}));
}

void TableHarness::Gather(const v1::GatherRequest& request) {
  absl::StatusOr<v1::GatherResponse> result = table_->Gather(request);
  Snapshot after = Check("Gather", result.status(),
                         {Code::kInvalidArgument, Code::kNotFound});
  if (result.ok()) {
    const v1::Tensor& rows = result->rows();
    const Stored& var = after[request.name()];
    Require(rows.dtype() == var.info.dtype() && rows.shape().dims_size() > 0 &&
                rows.shape().dims_size() == var.info.shape().dims_size(),
            absl::StrCat("Gather of ", request.name(), " gave rows ",
                         rows.shape().ShortDebugString()));
    std::vector<int64_t> dims(rows.shape().dims().begin(),
                              rows.shape().dims().end());
    Require(static_cast<int64_t>(rows.content().size()) ==
                Expect("NumElements", NumElements(dims)) *
                    static_cast<int64_t>(DTypeSize(rows.dtype())),
            "Gather's rows hold the wrong number of bytes");
  }
  SetState(std::move(after));
}

void TableHarness::List(const v1::ListVariablesRequest& request) {
  absl::StatusOr<v1::ListVariablesResponse> result = table_->List(request);
  Snapshot after =
      Check("List", result.status(), {Code::kInvalidArgument, Code::kNotFound});
  if (result.ok()) {
    for (const v1::ListVariablesResponse::Entry& entry : result->entries()) {
      Require(entry.is_scope() || after.contains(entry.name()),
              absl::StrCat("List gave missing variable ", entry.name()));
    }
  }
  SetState(std::move(after));
}

void TableHarness::BatchRead(const v1::BatchReadRequest& request) {
  absl::Status status = table_->BatchRead(request).status();
  SetState(
      Check("BatchRead", status, {Code::kInvalidArgument, Code::kNotFound}));
}

void TableHarness::Delete(absl::string_view name, bool recursive) {
  absl::StatusOr<int64_t> result = table_->Delete(name, recursive);
  Snapshot after = Check(
      "Delete", result.status(),
      {Code::kInvalidArgument, Code::kNotFound, Code::kFailedPrecondition});
  if (result.ok()) {
    Require(*result > 0 && *result == static_cast<int64_t>(state_.size()) -
                                          static_cast<int64_t>(after.size()),
            absl::StrCat("Delete of ", name, " returned ", *result, " for ",
                         state_.size(), " -> ", after.size(), " variables"));
    Require(!after.contains(std::string(name)),
            absl::StrCat("Delete of ", name, " left it in place"));
  }
  SetState(std::move(after));
}

void TableHarness::Rename(absl::string_view old_name,
                          absl::string_view new_name) {
  absl::StatusOr<int64_t> result = table_->Rename(old_name, new_name);
  Snapshot after = Check("Rename", result.status(),
                         {Code::kInvalidArgument, Code::kNotFound,
                          Code::kAlreadyExists, Code::kFailedPrecondition});
  if (result.ok()) {
    int64_t moved = 0;
    for (const auto& [name, stored] : state_) {
      if (name != old_name && !IsUnderScope(name, old_name)) continue;
      ++moved;
      const std::string target =
          absl::StrCat(new_name, name.substr(old_name.size()));
      auto it = after.find(target);
      Require(!after.contains(name) && it != after.end() &&
                  it->second.bytes == stored.bytes &&
                  it->second.info.dtype() == stored.info.dtype(),
              absl::StrCat("Rename ", old_name, " -> ", new_name,
                           " did not move ", name, " whole to ", target));
    }
    Require(moved == *result,
            absl::StrCat("Rename returned ", *result, ", moved ", moved));
  }
  SetState(std::move(after));
}

void TableHarness::Flush() {
  absl::Status status = table_->Flush();
  SetState(Check("Flush", status, {}));
}

void TableHarness::Reopen() {
  const Snapshot before = Take();
  table_.reset();
  storage_.reset();
  Open();
  Snapshot after = Take();
  const std::string changed = Difference(before, after);
  Require(changed.empty(),
          absl::StrCat("after closing and reopening the store, ", changed));
  SetState(std::move(after));
}

}  // namespace varscope::fuzz
