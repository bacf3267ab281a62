#include "server/table/variable_table.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/base/internal/endian.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/dtype.h"
#include "common/initializers.h"
#include "common/names.h"
#include "common/shape.h"
#include "common/status.h"
#include "server/base/log.h"
#include "server/table/batch_update.h"
#include "server/table/optimizers.h"
#include "server/table/tensor_ops.h"
#include "server/table/working_copy.h"

namespace varscope::server {

// Variables a structural change (delete, rename) works on, reserved in busy_.
struct VariableTable::Selection {
  std::vector<std::string> names;  // in name order
  std::vector<std::shared_ptr<Variable>> vars;
  std::vector<std::string> targets;  // rename: the new names, as `names`
  std::shared_ptr<absl::Notification> done =
      std::make_shared<absl::Notification>();
};

// Variables GetVariable decided to create, with the names it reserved.
struct VariableTable::Plan : CreationPlan {
  std::vector<std::string> reserved;
  std::shared_ptr<absl::Notification> done;
};

namespace {

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

// Chunks hold whole rows of the first axis, about `target` bytes each.
int64_t ChunkBytes(absl::Span<const int64_t> dims, DType dtype,
                   int64_t target) {
  const int64_t row = RowBytes(dims, dtype);
  if (row <= 0) return target;
  return std::max<int64_t>(1, target / row) * row;
}

// Constant initializer values are kept in the metadata only when small.
constexpr size_t kMaxStoredConstantBytes = 1024;

// `info` of a variable under `old_name` (or of it) renamed to the same name
// under `new_name` at `now`; a part of a whole renamed with it points at
// the whole's new name.
// `name`, under `old_name` (or it), as renamed to the same name under
// `new_name`.
std::string Renamed(absl::string_view name, absl::string_view old_name,
                    absl::string_view new_name) {
  return absl::StrCat(new_name, name.substr(old_name.size()));
}

void RenameInfo(absl::string_view old_name, absl::string_view new_name,
                int64_t now, v1::VariableInfo& info) {
  auto renamed = [&](const std::string& n) {
    return Renamed(n, old_name, new_name);
  };
  info.set_name(renamed(info.name()));
  info.set_update_time_micros(now);
  if (info.has_slice()) {
    const std::string& whole = info.slice().full_name();
    if (whole == old_name || IsUnderScope(whole, old_name)) {
      info.mutable_slice()->set_full_name(renamed(whole));
    }
  }
}

// Locks every variable's write lock in order; the caller unlocks.
template <typename V>
void LockAll(const std::vector<V>& vars) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (const auto& v : vars) v->write_mu.Lock();
}
template <typename V>
void UnlockAll(const std::vector<V>& vars) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (const auto& v : vars) v->write_mu.Unlock();
}

}  // namespace

VariableTable::VariableTable(const TableOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<VariableTable>> VariableTable::Load(
    const TableOptions& options, Storage* storage) {
  std::unique_ptr<VariableTable> table(new VariableTable(options));
  VS_RETURN_IF_ERROR(table->applied_.Load(*storage));
  VS_RETURN_IF_ERROR(table->intents_.Load(*storage));
  absl::MutexLock l(&table->mu_);
  VS_RETURN_IF_ERROR(
      storage->LoadAll([&](Storage::LoadedVariable loaded) -> absl::Status {
        table->mu_.AssertHeld();
        std::string name = loaded.meta.info().name();
        auto var = std::make_shared<Variable>(std::move(loaded.meta),
                                              std::move(loaded.data));
        var->row_record_bytes = loaded.row_record_bytes;
        table->IndexNames(*var, /*add=*/true);
        table->vars_.emplace(std::move(name), std::move(var));
        return absl::OkStatus();
      }));
  table->write_behind_ = std::make_unique<WriteBehind>(
      options.durability, storage,
      [t = table.get()](const DirtySet& dirty) {
        return t->ReadPublished(dirty);
      },
      &table->counters_, options.on_store_writable);
  return table;
}

PublishedState VariableTable::ReadPublished(const DirtySet& dirty) const {
  PublishedState present;
  absl::ReaderMutexLock l(&mu_);
  for (const auto& [name, changed] : dirty.variables) {
    std::shared_ptr<Variable> var = Lookup(vars_, name);
    if (var == nullptr) continue;
    const int64_t row_bytes = RowBytes(var->dims, var->dtype);
    const int64_t rows_bytes =
        static_cast<int64_t>(changed.rows.size()) * (8 + row_bytes);
    PublishedVariable& published =
        present.emplace(name, PublishedVariable{var, {}, nullptr, {}})
            .first->second;
    absl::ReaderMutexLock v(&var->mu);
    published.meta = var->meta;
    if (changed.whole || !RecordRows(static_cast<int64_t>(var->data->size()),
                                     var->row_record_bytes, rows_bytes)) {
      published.data = var->data;
      continue;
    }
    // Copied now: the rows change in place once published again.
    published.rows.resize(static_cast<size_t>(rows_bytes));
    char* p = published.rows.data();
    for (const int64_t row : changed.rows) {
      absl::little_endian::Store64(p, static_cast<uint64_t>(row));
      memcpy(p + 8, var->data->data() + row * row_bytes,
             static_cast<size_t>(row_bytes));
      p += 8 + row_bytes;
    }
  }
  return present;
}

absl::StatusOr<StoreSummary> VariableTable::CopyStore(
    const std::function<absl::StatusOr<uint64_t>()>& copy) {
  StoreSummary summary;
  VS_RETURN_IF_ERROR(write_behind_->WhilePaused([&]() -> absl::Status {
    {
      absl::ReaderMutexLock l(&mu_);
      for (const auto& [name, var] : vars_) {
        absl::ReaderMutexLock v(&var->mu);
        summary.versions[name] = var->meta.info().version();
        summary.bytes += static_cast<int64_t>(var->data->size());
      }
      summary.variables = static_cast<int64_t>(vars_.size());
    }
    VS_ASSIGN_OR_RETURN(summary.sequence, copy());
    return absl::OkStatus();
  }));
  return summary;
}

std::shared_ptr<absl::Notification> VariableTable::Busy(
    const std::vector<std::string>& names) const {
  for (const std::string& n : names) {
    auto it = busy_.find(n);
    if (it != busy_.end()) return it->second;
  }
  return nullptr;
}

void VariableTable::IndexNames(const Variable& var, bool add) {
  absl::MutexLock n(&names_mu_);
  for (const std::string* name : {&var.name, &var.whole}) {
    if (name->empty()) continue;
    if (add) {
      names_.Add(*name);
    } else {
      names_.Remove(*name);
    }
  }
}

std::string VariableTable::NearMatches(absl::string_view name) const {
  std::vector<std::string> candidates;
  {
    absl::ReaderMutexLock n(&names_mu_);
    candidates = names_.NearMatchCandidates(name);
  }
  if (near_matches_hook_) near_matches_hook_();
  return varscope::NearMatches(name, candidates);
}

absl::Status VariableTable::WithNearMatches(absl::Status status,
                                            absl::string_view name) const {
  if (!absl::IsNotFound(status)) return status;
  return absl::NotFoundError(absl::StrCat(status.message(), NearMatches(name)));
}

absl::StatusOr<std::shared_ptr<VariableTable::Variable>> VariableTable::Find(
    absl::string_view name) const {
  VS_RETURN_IF_ERROR(ValidateName(name));
  std::shared_ptr<Variable> var;
  {
    absl::ReaderMutexLock l(&mu_);
    var = Lookup(vars_, name);
  }
  if (var == nullptr) {
    return WithNearMatches(absl::NotFoundError(absl::StrCat(
                               "Variable ", name, " does not exist.")),
                           name);
  }
  return var;
}

absl::StatusOr<v1::GetVariableResponse> VariableTable::GetVariable(
    const v1::GetVariableRequest& request) {
  VS_RETURN_IF_ERROR(ValidateGetVariable(request));
  const std::string& name = request.name();
  const std::vector<std::string> keys = {name, PartName(name, 0)};

  for (;;) {
    std::shared_ptr<absl::Notification> wait;
    Plan plan;
    absl::StatusOr<v1::GetVariableResponse> decided;
    {
      absl::MutexLock l(&mu_);
      wait = Busy(keys);
      if (wait == nullptr) {
        decided =
            PlanGetVariable(request, vars_, options_.max_variable_bytes, &plan);
        if (decided.ok() && !plan.parts.empty()) {
          plan.done = std::make_shared<absl::Notification>();
          plan.reserved.push_back(name);
          if (plan.partitioned) {
            for (const auto& part : plan.parts) {
              plan.reserved.push_back(part.meta.info().name());
            }
          }
          for (const std::string& n : plan.reserved) busy_[n] = plan.done;
        }
      }
    }
    if (wait != nullptr) {
      wait->WaitForNotification();
      continue;
    }
    if (!decided.ok()) return WithNearMatches(decided.status(), name);
    if (plan.parts.empty()) return decided;
    return Create(plan);
  }
}

absl::StatusOr<std::shared_ptr<VariableTable::Variable>>
VariableTable::NewVariable(const Plan& plan, Plan::Part& part, int64_t seed,
                           const v1::Initializer& stored_init,
                           int64_t now) const {
  v1::VariableInfo* info = part.meta.mutable_info();
  const std::vector<int64_t> dims(info->shape().dims().begin(),
                                  info->shape().dims().end());
  VS_ASSIGN_OR_RETURN(Tensor value,
                      InitialValue(plan.init, seed, plan.dtype, plan.full_dims,
                                   part.offset, dims));
  info->set_dtype(plan.dtype);
  info->set_version(1);
  info->set_trainable(plan.trainable);
  if (plan.collections.has_value()) {
    *info->mutable_collections() = *plan.collections;
  }
  *info->mutable_initializer() = stored_init;
  if (plan.embedding.has_value()) *info->mutable_embedding() = *plan.embedding;
  if (plan.constraint.kind_case() != v1::Constraint::KIND_NOT_SET) {
    *info->mutable_constraint() = plan.constraint;
  }
  info->set_create_time_micros(now);
  info->set_update_time_micros(now);
  info->set_byte_size(static_cast<int64_t>(value.bytes().size()));
  part.meta.set_chunk_bytes(ChunkBytes(dims, plan.dtype, options_.chunk_bytes));
  ChecksumChunks(value.bytes(), 0,
                 Storage::NumChunks(info->byte_size(), part.meta.chunk_bytes()),
                 part.meta);
  return std::make_shared<Variable>(std::move(part.meta), value.ReleaseBytes());
}

absl::StatusOr<v1::GetVariableResponse> VariableTable::Create(Plan& plan) {
  // Whatever happens, release the reserved names and wake the waiters (after
  // the new variables are in the table).
  struct Release {
    VariableTable* table;
    Plan& plan;
    ~Release() {
      {
        absl::MutexLock l(&table->mu_);
        for (const std::string& n : plan.reserved) table->busy_.erase(n);
      }
      plan.done->Notify();
    }
  } release{this, plan};

  const int64_t seed =
      plan.init.has_seed()
          ? plan.init.seed()
          : absl::Uniform<int64_t>(absl::BitGen(), 0,
                                   std::numeric_limits<int64_t>::max());
  v1::Initializer stored_init = plan.init;
  stored_init.set_seed(seed);
  if (stored_init.value().content().size() > kMaxStoredConstantBytes) {
    stored_init.clear_value();
  }
  const int64_t now = NowMicros();
  std::vector<std::shared_ptr<Variable>> created;
  v1::GetVariableResponse response;
  response.set_created(true);
  for (Plan::Part& part : plan.parts) {
    VS_ASSIGN_OR_RETURN(std::shared_ptr<Variable> var,
                        NewVariable(plan, part, seed, stored_init, now));
    if (plan.partitioned) {
      *response.add_parts() = var->Info();
    } else {
      *response.mutable_variable() = var->Info();
    }
    created.push_back(std::move(var));
  }
  if (plan.partitioned) {
    v1::VariableInfo* whole = response.mutable_variable();
    whole->set_name(plan.reserved.front());
    whole->set_dtype(plan.dtype);
    whole->mutable_shape()->mutable_dims()->Assign(plan.full_dims.begin(),
                                                   plan.full_dims.end());
    whole->set_trainable(plan.trainable);
    if (plan.collections.has_value()) {
      *whole->mutable_collections() = *plan.collections;
    }
    *whole->mutable_initializer() = stored_init;
    whole->set_create_time_micros(now);
  }
  DirtySet dirty;
  for (const std::shared_ptr<Variable>& var : created) {
    dirty.AddReset(var->name);
  }
  VS_RETURN_IF_ERROR(write_behind_->Commit(
      [&](StorageBatch& batch) {
        for (const std::shared_ptr<Variable>& var : created) {
          absl::ReaderMutexLock v(&var->mu);
          batch.PutVariable(var->meta, *var->data);
        }
      },
      std::move(dirty),
      [&] {
        absl::MutexLock l(&mu_);
        for (std::shared_ptr<Variable>& var : created) {
          IndexNames(*var, /*add=*/true);
          std::string name = var->name;
          vars_.insert_or_assign(std::move(name), std::move(var));
        }
      }));
  return response;
}

absl::StatusOr<VariableTable::SharedValue> VariableTable::ReadShared(
    absl::string_view name) const {
  VS_ASSIGN_OR_RETURN(std::shared_ptr<Variable> var, Find(name));
  auto [data, version] = var->Snapshot();
  return SharedValue{std::move(data), version, var->dtype, var->dims};
}

absl::StatusOr<ReadResult> VariableTable::Read(absl::string_view name) const {
  VS_ASSIGN_OR_RETURN(SharedValue shared, ReadShared(name));
  VS_ASSIGN_OR_RETURN(
      Tensor value,
      Tensor::FromBytes(shared.dtype, std::move(shared.dims), *shared.bytes));
  return ReadResult{std::move(value), shared.version};
}

absl::StatusOr<std::vector<std::pair<std::string, VariableTable::SharedValue>>>
VariableTable::BatchRead(const v1::BatchReadRequest& request) const {
  std::map<std::string, std::shared_ptr<Variable>> vars;
  if (request.names().empty()) {
    VS_RETURN_IF_ERROR(ValidateScope(request.scope()));
    absl::ReaderMutexLock l(&mu_);
    for (auto it = vars_.lower_bound(request.scope());
         it != vars_.end() && absl::StartsWith(it->first, request.scope());
         ++it) {
      if (request.scope().empty() || IsUnderScope(it->first, request.scope())) {
        vars.emplace(it->first, it->second);
      }
    }
  } else {
    for (const std::string& name : request.names()) {
      VS_ASSIGN_OR_RETURN(vars[name], Find(name));
    }
  }
  // Shared locks in name order: a batch update publishes under exclusive
  // locks in the same order, so this sees all of it or none.
  std::vector<std::pair<std::string, SharedValue>> values;
  values.reserve(vars.size());
  for (auto& [name, var] : vars) var->mu.ReaderLock();
  for (auto& [name, var] : vars) {
    values.emplace_back(name, SharedValue{var->data, var->meta.info().version(),
                                          var->dtype, var->dims});
  }
  for (auto& [name, var] : vars) var->mu.ReaderUnlock();
  return values;
}

absl::StatusOr<v1::GatherResponse> VariableTable::Gather(
    const v1::GatherRequest& request) const {
  VS_ASSIGN_OR_RETURN(std::shared_ptr<Variable> var, Find(request.name()));
  if (var->dims.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot gather rows of scalar variable ", request.name()));
  }
  VS_ASSIGN_OR_RETURN(
      Tensor indices,
      Tensor::FromBytes(request.indices().dtype(),
                        {request.indices().shape().dims().begin(),
                         request.indices().shape().dims().end()},
                        request.indices().content()));
  VS_ASSIGN_OR_RETURN(std::vector<int64_t> rows,
                      RowIndices(indices, request.name(), var->dims[0]));
  const int64_t row_bytes = RowBytes(var->dims, var->dtype);
  std::vector<int64_t> dims = var->dims;
  dims[0] = static_cast<int64_t>(rows.size());
  Tensor out(var->dtype, dims);
  v1::GatherResponse response;
  {
    // Copied under the lock rather than from a reference held after it: a
    // held reference would make the next update copy the whole variable
    // instead of changing its rows in place.
    absl::ReaderMutexLock l(&var->mu);
    for (size_t i = 0; i < rows.size(); ++i) {
      memcpy(out.mutable_data() + i * row_bytes,
             var->data->data() + rows[i] * row_bytes,
             static_cast<size_t>(row_bytes));
    }
    response.set_version(var->meta.info().version());
  }
  TensorToProto(std::move(out), response.mutable_rows());
  return response;
}

absl::Status VariableTable::EnsureSlots(const Variable& var,
                                        const OptimizerStep& optimizer) {
  for (const SlotSpec& slot : optimizer.slots()) {
    v1::GetVariableRequest request;
    request.set_name(JoinName(var.name, slot.suffix));
    request.set_mode(v1::AUTO_REUSE);
    request.set_dtype(var.dtype);
    request.mutable_shape()->mutable_dims()->Assign(var.dims.begin(),
                                                    var.dims.end());
    request.set_trainable(false);
    v1::Initializer* init = request.mutable_initializer();
    init->set_kind(v1::Initializer::CONSTANT);
    TensorToProto(
        Tensor::FromVector<double>(v1::DT_DOUBLE, {}, {&slot.initial, 1}),
        init->mutable_value());
    VS_RETURN_IF_ERROR(GetVariable(request).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::BatchUpdateResponse> VariableTable::BatchUpdate(
    v1::BatchUpdateRequest request) {
  VS_RETURN_IF_ERROR(Intents::Check(request));
  if (!request.has_id()) return ApplyBatch(std::move(request));
  const v1::UpdateId id = request.id();
  VS_ASSIGN_OR_RETURN(std::optional<v1::BatchUpdateResponse> recorded,
                      applied_.Begin(id));
  if (recorded.has_value()) {
    counters_.duplicates_skipped.Add();
    return *std::move(recorded);
  }
  absl::StatusOr<v1::BatchUpdateResponse> result =
      ApplyBatch(std::move(request));
  applied_.End(id, result.ok() ? &*result : nullptr);
  return result;
}

absl::StatusOr<v1::BatchUpdateResponse> VariableTable::ApplyBatch(
    v1::BatchUpdateRequest request) {
  VS_ASSIGN_OR_RETURN(std::vector<BatchOp> ops, DecodeUpdates(request));
  VS_ASSIGN_OR_RETURN(Involved involved, Involve(ops));
  // Lock them all in name order; read their published state.
  std::vector<std::shared_ptr<Variable>> locked;
  for (auto& [name, var] : involved) locked.push_back(var);
  LockAll(locked);
  struct Unlock {
    std::vector<std::shared_ptr<Variable>>& vars;
    ~Unlock() { UnlockAll(vars); }
  } unlock{locked};
  VS_ASSIGN_OR_RETURN(WorkingSet working, ReadLocked(involved));
  VS_RETURN_IF_ERROR(CheckVersions(ops, working));
  VS_RETURN_IF_ERROR(ApplyUpdates(ops, working));
  return CommitBatch(request, ops, working);
}

absl::StatusOr<VariableTable::Involved> VariableTable::Involve(
    const std::vector<BatchOp>& ops) {
  Involved involved;
  for (const BatchOp& op : ops) {
    VS_ASSIGN_OR_RETURN(std::shared_ptr<Variable> var, Find(op.name));
    if (op.optimizer.has_value()) {
      if (!IsFloating(var->dtype)) {
        return absl::InvalidArgumentError(
            absl::StrCat("Optimizers train floating-point variables; ", op.name,
                         " is ", DTypeName(var->dtype)));
      }
      VS_RETURN_IF_ERROR(EnsureSlots(*var, *op.optimizer));
      for (const SlotSpec& slot : op.optimizer->slots()) {
        const std::string slot_name = JoinName(op.name, slot.suffix);
        VS_ASSIGN_OR_RETURN(involved[slot_name], Find(slot_name));
      }
      // The scalars it reads in the batch (global step, beta powers).
      for (const std::string& input : op.optimizer->InputVariables()) {
        VS_ASSIGN_OR_RETURN(involved[input], Find(input));
      }
    }
    involved[op.name] = std::move(var);
  }
  return involved;
}

absl::StatusOr<WorkingSet> VariableTable::ReadLocked(const Involved& involved) {
  WorkingSet working;
  for (const auto& [name, var] : involved) {
    var->write_mu.AssertHeld();
    if (var->deleted) {
      return absl::NotFoundError(
          absl::StrCat("Variable ", name, " does not exist (deleted)."));
    }
    absl::ReaderMutexLock l(&var->mu);
    working.emplace(
        name, WorkingVariable{
                  var.get(), var->meta,
                  WorkingCopy(var->data, RowBytes(var->dims, var->dtype))});
  }
  return working;
}

absl::StatusOr<v1::BatchUpdateResponse> VariableTable::CommitBatch(
    const v1::BatchUpdateRequest& request, const std::vector<BatchOp>& ops,
    WorkingSet& working) {
  // One store write for everything, then publish under every variable's
  // lock at once.
  const int64_t now = NowMicros();
  DirtySet dirty;
  for (auto& [name, w] : working) {
    if (!w.touched) continue;
    v1::VariableInfo* info = w.meta.mutable_info();
    info->set_version(info->version() + 1);
    info->set_update_time_micros(now);
    // wal, sync: the store takes the rows as a row record, or consolidates
    // them (interval: each flush decides, see ReadPublished).
    if (options_.durability.mode != Durability::Mode::kInterval &&
        !w.copy.whole_changed() &&
        !RecordRows(w.copy.size(), w.var->row_record_bytes,
                    w.copy.changed_row_bytes())) {
      w.copy.MutableWhole();
    }
    w.copy.MarkChanged(name, dirty);
  }
  v1::BatchUpdateResponse response;
  for (const BatchOp& op : ops) {
    WorkingVariable& w = working.at(op.name);
    response.add_versions(w.meta.info().version());
    if (request.return_values()) {
      VS_ASSIGN_OR_RETURN(
          Tensor value,
          Tensor::FromBytes(w.var->dtype, w.var->dims, w.copy.CopyContents()));
      TensorToProto(std::move(value), response.add_values());
    }
  }
  std::optional<AppliedUpdates::Record> record;
  const Intents::Change intents = intents_.Prepare(request);
  if (request.has_id()) {
    record = applied_.ToRecord(request.id(), response);
    const std::string& client_id = request.id().client_id();
    dirty.AddApplied(client_id, request.id().sequence(), record->result);
    for (int64_t old : record->forget) dirty.AddApplied(client_id, old, {});
    intents.AddTo(dirty);
  }
  VS_RETURN_IF_ERROR(write_behind_->Commit(
      [&](StorageBatch& batch) {
        for (auto& [name, w] : working) {
          if (!w.touched) continue;
          const bool has_records = w.var->row_record_bytes != 0;
          if (!w.copy.whole_changed()) {
            w.var->row_record_bytes += w.copy.changed_row_bytes();
          }
          w.copy.Persist(w.meta, has_records, batch);
        }
        if (record.has_value()) {
          batch.PutApplied(request.id().client_id(), request.id().sequence(),
                           record->result);
          for (int64_t old : record->forget) {
            batch.DeleteApplied(request.id().client_id(), old);
          }
          intents.Write(batch);
        }
      },
      std::move(dirty),
      [&] {
        for (auto& [name, w] : working) w.var->mu.Lock();
        for (auto& [name, w] : working) {
          w.var->mu.AssertHeld();
          if (!w.touched) continue;
          // wal, sync: the whole write deleted the records (interval: the
          // flush that writes it will).
          if (options_.durability.mode != Durability::Mode::kInterval &&
              w.copy.whole_changed()) {
            w.var->row_record_bytes = 0;
          }
          w.var->meta = std::move(w.meta);
          w.copy.Publish(w.var->data);
        }
        for (auto& [name, w] : working) w.var->mu.Unlock();
      }));
  intents_.Commit(intents);
  counters_.updates_applied.Add(static_cast<double>(ops.size()));
  return response;
}

absl::StatusOr<bool> VariableTable::ForgetIntent(const v1::UpdateId& id) {
  const Intents::Change change = intents_.Forget(id);
  if (change.empty()) return false;
  DirtySet dirty;
  change.AddTo(dirty);
  VS_RETURN_IF_ERROR(
      write_behind_->Commit([&](StorageBatch& batch) { change.Write(batch); },
                            std::move(dirty), [] {}));
  intents_.Commit(change);
  return true;
}

absl::StatusOr<v1::VariableInfo> VariableTable::Stat(
    absl::string_view name) const {
  VS_ASSIGN_OR_RETURN(std::shared_ptr<Variable> var, Find(name));
  return var->Info();
}

absl::StatusOr<v1::ListVariablesResponse> VariableTable::List(
    const v1::ListVariablesRequest& request) const {
  const std::string& scope = request.scope();
  VS_RETURN_IF_ERROR(ValidateScope(scope));
  if (request.page_size() < 0 || request.page_size() > options_.max_page_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must be between 0 and ", options_.max_page_size,
                     ", not ", request.page_size()));
  }
  const int32_t page_size = request.page_size() == 0
                                ? options_.default_page_size
                                : request.page_size();
  const std::string prefix = scope.empty() ? "" : absl::StrCat(scope, "/");
  // A token is where the listing resumes: a name under the scope, or a child
  // scope's name and '/' (a cluster client's key for "after that scope").
  const absl::string_view token = request.page_token();
  if (!token.empty() && (!absl::StartsWith(token, prefix) ||
                         !ValidateName(absl::StripSuffix(token, "/")).ok())) {
    return absl::InvalidArgumentError(
        "page_token is not one this server issued for this listing: pass "
        "back a next_page_token unchanged");
  }
  v1::ListVariablesResponse response;
  absl::ReaderMutexLock l(&mu_);
  auto it = vars_.lower_bound(std::max(prefix, request.page_token()));
  while (it != vars_.end() && it->first.starts_with(prefix)) {
    if (response.entries_size() == page_size) {
      response.set_next_page_token(it->first);
      break;
    }
    auto* entry = response.add_entries();
    const size_t slash = request.recursive()
                             ? std::string::npos
                             : it->first.find('/', prefix.size());
    if (slash == std::string::npos) {
      entry->set_name(it->first);
      *entry->mutable_variable() = it->second->Info();
      ++it;
    } else {
      // A child scope: list it once and skip everything under it ('0' is
      // the character after '/').
      std::string child = it->first.substr(0, slash);
      entry->set_name(child);
      entry->set_is_scope(true);
      it = vars_.lower_bound(absl::StrCat(child, "0"));
    }
  }
  return response;
}

absl::Status VariableTable::Select(
    absl::string_view name, bool recursive,
    const std::function<std::string(const std::string&)>& rename,
    Selection* selection) {
  for (;;) {
    std::shared_ptr<absl::Notification> wait;
    absl::Status status;
    {
      absl::MutexLock l(&mu_);
      status = Pick(name, recursive, rename, selection, &wait);
    }
    if (!status.ok()) return WithNearMatches(status, name);
    if (wait == nullptr) return absl::OkStatus();
    wait->WaitForNotification();
  }
}

absl::Status VariableTable::Pick(
    absl::string_view name, bool recursive,
    const std::function<std::string(const std::string&)>& rename,
    Selection* selection, std::shared_ptr<absl::Notification>* wait) {
  const std::string prefix = absl::StrCat(name, "/");
  selection->names.clear();
  selection->vars.clear();
  selection->targets.clear();
  for (auto it = vars_.lower_bound(name); it != vars_.end(); ++it) {
    if (it->first == name ||
        (recursive && absl::StartsWith(it->first, prefix))) {
      selection->names.push_back(it->first);
      selection->vars.push_back(it->second);
    } else if (!absl::StartsWith(it->first, name)) {
      break;
    }
  }
  if (selection->names.empty()) {
    return absl::NotFoundError(
        recursive ? absl::StrCat("Nothing named ", name, " or under ", prefix,
                                 " exists.")
                  : absl::StrCat("Variable ", name, " does not exist."));
  }
  VS_RETURN_IF_ERROR(CheckWholes(*selection, rename != nullptr));
  if (rename) {
    for (const std::string& n : selection->names) {
      std::string target = rename(n);
      if (Lookup(vars_, target) != nullptr || busy_.contains(target)) {
        return absl::AlreadyExistsError(
            absl::StrCat("Cannot rename ", n, " to ", target, ": Variable ",
                         target, " already exists"));
      }
      selection->targets.push_back(std::move(target));
    }
  }
  *wait = Busy(selection->names);
  if (*wait != nullptr) return absl::OkStatus();
  for (const std::string& n : selection->names) busy_[n] = selection->done;
  for (const std::string& n : selection->targets) busy_[n] = selection->done;
  return absl::OkStatus();
}

absl::Status VariableTable::CheckWholes(const Selection& selection,
                                        bool rename) const {
  const absl::flat_hash_set<absl::string_view> taken(selection.names.begin(),
                                                     selection.names.end());
  // (whole, slot) already checked; slot "" for the parts themselves.
  absl::flat_hash_set<std::pair<std::string, std::string>> checked;
  for (const std::shared_ptr<Variable>& var : selection.vars) {
    // The part `var` is, or whose optimizer slot it is.
    std::shared_ptr<Variable> part = var;
    absl::string_view slot;
    if (var->whole.empty()) {
      slot = LeafName(var->name);
      if (!IsSlotName(slot) || slot.size() == var->name.size()) continue;
      part = Lookup(vars_, absl::string_view(var->name).substr(
                               0, var->name.size() - slot.size() - 1));
      if (part == nullptr || part->whole.empty()) continue;
    }
    if (!checked.emplace(part->whole, slot).second) continue;
    for (int64_t i = 0; i < part->num_parts; ++i) {
      std::string member = PartName(part->whole, i);
      if (!slot.empty()) member = JoinName(member, slot);
      if (taken.contains(member) || Lookup(vars_, member) == nullptr) continue;
      return absl::FailedPreconditionError(absl::StrCat(
          "Variable ", var->name, " is ",
          slot.empty() ? "" : absl::StrCat("the ", slot, " slot of "), "part ",
          part->part_index, " of the partitioned variable ", part->whole, " (",
          part->num_parts, " parts); ",
          rename ? absl::StrCat("rename the whole: varscope mv ", part->whole,
                                " NEW_NAME")
                 : absl::StrCat("delete the whole: varscope rm -r ",
                                part->whole)));
    }
  }
  return absl::OkStatus();
}

void VariableTable::Release(Selection& selection) {
  {
    absl::MutexLock l(&mu_);
    for (const std::string& n : selection.names) busy_.erase(n);
    for (const std::string& n : selection.targets) busy_.erase(n);
  }
  selection.done->Notify();
}

void VariableTable::Retire(Selection& selection,
                           std::vector<std::shared_ptr<Variable>> moved) {
  absl::MutexLock l(&mu_);
  for (size_t i = 0; i < selection.vars.size(); ++i) {
    selection.vars[i]->write_mu.AssertHeld();
    selection.vars[i]->deleted = true;
    IndexNames(*selection.vars[i], /*add=*/false);
    vars_.erase(selection.names[i]);
    if (!moved.empty()) {
      IndexNames(*moved[i], /*add=*/true);
      vars_.insert_or_assign(selection.targets[i], std::move(moved[i]));
    }
  }
}

absl::StatusOr<int64_t> VariableTable::Delete(absl::string_view name,
                                              bool recursive) {
  VS_RETURN_IF_ERROR(ValidateName(name));
  Selection selection;
  VS_RETURN_IF_ERROR(Select(name, recursive, nullptr, &selection));
  VS_RETURN_IF_ERROR(DeleteSelected(selection));
  return static_cast<int64_t>(selection.names.size());
}

absl::Status VariableTable::DeleteSelected(Selection& selection) {
  DirtySet dirty;
  for (const std::string& n : selection.names) dirty.AddReset(n);
  LockAll(selection.vars);
  const absl::Status status = write_behind_->Commit(
      [&](StorageBatch& batch) {
        for (const std::string& n : selection.names) batch.DeleteVariable(n);
      },
      std::move(dirty), [&] { Retire(selection, {}); });
  Release(selection);
  UnlockAll(selection.vars);
  return status;
}

absl::StatusOr<v1::ExportVariablesResponse> VariableTable::Export(
    const v1::ExportVariablesRequest& request) {
  v1::ExportVariablesResponse response;
  if (!request.rename_from().empty()) {
    VS_RETURN_IF_ERROR(ValidateName(request.rename_from()));
    VS_RETURN_IF_ERROR(ValidateName(request.rename_to()));
    for (const std::string& name : request.names()) {
      if (name == request.rename_from() ||
          IsUnderScope(name, request.rename_from())) {
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("Cannot rename ", name, " from ", request.rename_from(),
                       ": it is not under it"));
    }
  }
  for (const std::string& name : request.names()) {
    VS_ASSIGN_OR_RETURN(const std::shared_ptr<Variable> var, Find(name));
    v1::MovedVariable& moved = *response.add_variables();
    absl::ReaderMutexLock l(&var->mu);
    if (var->meta.info().has_embedding()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Variable ", name,
          " is an embedding variable: its rows are spread over every shard "
          "by key and are not moved"));
    }
    *moved.mutable_stored() = var->meta;
    moved.set_data(*var->data);
    if (!request.rename_from().empty()) {
      RenameInfo(request.rename_from(), request.rename_to(), NowMicros(),
                 *moved.mutable_stored()->mutable_info());
    }
  }
  if (request.with_applied()) {
    for (v1::AppliedRecord& record : applied_.Export()) {
      *response.add_applied() = std::move(record);
    }
  }
  return response;
}

namespace {

// INVALID_ARGUMENT unless `moved` is a dense variable whose bytes fit its
// dtype and shape.
absl::Status CheckMoved(const v1::MovedVariable& moved) {
  const v1::VariableInfo& info = moved.stored().info();
  VS_RETURN_IF_ERROR(ValidateName(info.name()));
  if (info.has_embedding()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", info.name(), " is an embedding variable: not installed"));
  }
  if (!IsSupportedDType(info.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Variable ", info.name(), " has the unsupported dtype ",
                     static_cast<int>(info.dtype())));
  }
  const std::vector<int64_t> dims(info.shape().dims().begin(),
                                  info.shape().dims().end());
  VS_ASSIGN_OR_RETURN(const int64_t elements, NumElements(dims));
  const int64_t bytes =
      elements * static_cast<int64_t>(DTypeSize(info.dtype()));
  if (bytes != static_cast<int64_t>(moved.data().size()) ||
      moved.stored().chunk_bytes() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", info.name(), " comes with ", moved.data().size(),
        " bytes and chunks of ", moved.stored().chunk_bytes(),
        "; its dtype and shape need ", bytes,
        " bytes in chunks of at least 1"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::InstallVariablesResponse> VariableTable::Install(
    const v1::InstallVariablesRequest& request) {
  for (const v1::MovedVariable& moved : request.variables()) {
    VS_RETURN_IF_ERROR(CheckMoved(moved));
  }
  VS_ASSIGN_OR_RETURN(const std::vector<v1::AppliedRecord> records,
                      applied_.Missing(request.applied()));
  v1::InstallVariablesResponse response;
  std::vector<std::shared_ptr<Variable>> installed;
  std::vector<std::string> reserved;
  auto done = std::make_shared<absl::Notification>();
  {
    absl::MutexLock l(&mu_);
    for (const v1::MovedVariable& moved : request.variables()) {
      const std::string& name = moved.stored().info().name();
      if (Lookup(vars_, name) != nullptr || busy_.contains(name)) {
        if (request.refuse_present()) {
          for (const std::string& n : reserved) busy_.erase(n);
          done->Notify();
          return absl::AlreadyExistsError(
              absl::StrCat("Variable ", name, " already exists"));
        }
        response.set_present(response.present() + 1);
        continue;
      }
      busy_[name] = done;
      reserved.push_back(name);
      v1::StoredVariable stored = moved.stored();
      stored.clear_chunk_crc32c();  // PutVariable computes them
      installed.push_back(
          std::make_shared<Variable>(std::move(stored), moved.data()));
    }
  }
  DirtySet dirty;
  for (const std::shared_ptr<Variable>& var : installed) {
    dirty.AddReset(var->name);
  }
  const absl::Status status = write_behind_->Commit(
      [&](StorageBatch& batch) {
        for (const std::shared_ptr<Variable>& var : installed) {
          absl::ReaderMutexLock v(&var->mu);
          batch.PutVariable(var->meta, *var->data);
        }
        for (const v1::AppliedRecord& record : records) {
          batch.PutApplied(record.client_id(), record.sequence(),
                           record.result());
        }
      },
      std::move(dirty),
      [&] {
        applied_.Add(records);
        absl::MutexLock l(&mu_);
        for (std::shared_ptr<Variable>& var : installed) {
          IndexNames(*var, /*add=*/true);
          std::string name = var->name;
          vars_.insert_or_assign(std::move(name), std::move(var));
        }
      });
  {
    absl::MutexLock l(&mu_);
    for (const std::string& n : reserved) busy_.erase(n);
  }
  done->Notify();
  VS_RETURN_IF_ERROR(status);
  response.set_installed(static_cast<int64_t>(reserved.size()));
  return response;
}

absl::StatusOr<int64_t> VariableTable::Remove(
    const std::vector<std::string>& names) {
  const absl::btree_set<std::string> unique(names.begin(), names.end());
  Selection selection;
  for (;;) {
    std::shared_ptr<absl::Notification> wait;
    {
      absl::MutexLock l(&mu_);
      selection.names.clear();
      selection.vars.clear();
      for (const std::string& n : unique) {
        if (std::shared_ptr<Variable> var = Lookup(vars_, n)) {
          selection.names.push_back(n);
          selection.vars.push_back(std::move(var));
        }
      }
      wait = Busy(selection.names);
      if (wait == nullptr) {
        for (const std::string& n : selection.names) busy_[n] = selection.done;
        break;
      }
    }
    wait->WaitForNotification();
  }
  VS_RETURN_IF_ERROR(DeleteSelected(selection));
  return static_cast<int64_t>(selection.names.size());
}

absl::StatusOr<int64_t> VariableTable::Rename(absl::string_view old_name,
                                              absl::string_view new_name) {
  VS_RETURN_IF_ERROR(ValidateRename(old_name, new_name));
  // old_name[/rest] -> new_name[/rest]
  auto renamed = [&](const std::string& n) {
    return Renamed(n, old_name, new_name);
  };
  Selection selection;
  VS_RETURN_IF_ERROR(Select(old_name, /*recursive=*/true, renamed, &selection));
  LockAll(selection.vars);
  std::vector<std::shared_ptr<Variable>> moved;
  DirtySet dirty;
  const int64_t now = NowMicros();
  for (size_t i = 0; i < selection.vars.size(); ++i) {
    Variable& var = *selection.vars[i];
    v1::StoredVariable meta;
    std::string data;
    {
      absl::ReaderMutexLock l(&var.mu);
      meta = var.meta;
      data = *var.data;
    }
    RenameInfo(old_name, new_name, now, *meta.mutable_info());
    dirty.AddReset(selection.names[i]);
    dirty.AddReset(selection.targets[i]);
    moved.push_back(
        std::make_shared<Variable>(std::move(meta), std::move(data)));
  }
  const absl::Status status = write_behind_->Commit(
      [&](StorageBatch& batch) {
        for (size_t i = 0; i < moved.size(); ++i) {
          batch.DeleteVariable(selection.names[i]);
          absl::ReaderMutexLock v(&moved[i]->mu);
          batch.PutVariable(moved[i]->meta, *moved[i]->data);
        }
      },
      std::move(dirty), [&] { Retire(selection, std::move(moved)); });
  Release(selection);
  UnlockAll(selection.vars);
  VS_RETURN_IF_ERROR(status);
  return static_cast<int64_t>(selection.names.size());
}

VariableTable::Totals VariableTable::GetTotals() const {
  Totals totals;
  absl::ReaderMutexLock l(&mu_);
  for (const auto& [name, var] : vars_) {
    absl::ReaderMutexLock v(&var->mu);
    if (var->meta.info().has_embedding()) {
      ++totals.embedding_variables;
      continue;
    }
    ++totals.variables;
    totals.bytes += static_cast<int64_t>(var->data->size());
  }
  return totals;
}

}  // namespace varscope::server
