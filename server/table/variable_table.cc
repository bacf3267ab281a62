#include "server/table/variable_table.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/initializers.h"
#include "common/names.h"
#include "common/partitioners.h"
#include "common/shape.h"
#include "common/status.h"
#include "server/base/log.h"
#include "server/table/optimizers.h"
#include "server/table/tensor_ops.h"
#include "server/table/working_copy.h"

namespace varscope::server {

namespace {

// The number of parts of the partitioned variable `slice` is a part of.
int64_t NumParts(const v1::SliceInfo& slice) {
  int64_t n = 1;
  for (const int64_t p : slice.partitions()) n *= p;
  return n;
}

}  // namespace

struct VariableTable::Variable {
  Variable(v1::StoredVariable m, std::string d)
      : name(m.info().name()),
        dtype(m.info().dtype()),
        dims(m.info().shape().dims().begin(), m.info().shape().dims().end()),
        whole(m.info().has_slice() ? m.info().slice().full_name() : ""),
        part_index(m.info().slice().part_index()),
        num_parts(m.info().has_slice() ? NumParts(m.info().slice()) : 0),
        chunk_bytes(m.chunk_bytes()),
        meta(std::move(m)),
        data(std::make_shared<std::string>(std::move(d))) {}

  v1::VariableInfo Info() const {
    absl::ReaderMutexLock l(&mu);
    return meta.info();
  }

  // The published bytes and version. The bytes never change while held.
  std::pair<std::shared_ptr<const std::string>, int64_t> Snapshot() const {
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

// Variables a structural change (delete, rename) works on, reserved in busy_.
struct VariableTable::Selection {
  std::vector<std::string> names;  // in name order
  std::vector<std::shared_ptr<Variable>> vars;
  std::vector<std::string> targets;  // rename: the new names, as `names`
  std::shared_ptr<absl::Notification> done =
      std::make_shared<absl::Notification>();
};

// Variables GetVariable decided to create, with the names it reserved.
struct VariableTable::Plan {
  struct Part {
    v1::StoredVariable meta;
    std::vector<int64_t> offset;
  };
  std::vector<Part> parts;
  std::vector<int64_t> full_dims;
  bool partitioned = false;
  DType dtype = v1::DT_FLOAT;
  v1::Initializer init;  // resolved from the default
  bool trainable = true;
  v1::Constraint constraint;
  std::optional<v1::Collections> collections;     // absent: the default
  std::optional<v1::EmbeddingOptions> embedding;  // set: an embedding variable
  std::vector<std::string> reserved;
  std::shared_ptr<absl::Notification> done;
};

namespace {

std::string PartName(absl::string_view name, int64_t i) {
  return absl::StrCat(name, "/part_", i);
}

// Python's str() of a list of ints: "[4, 1]".
std::string ListString(absl::Span<const int64_t> values) {
  return absl::StrCat("[", absl::StrJoin(values, ", "), "]");
}

// A request's collection names: a variable's metadata is kept in memory and
// sent with every listing, so its size is bounded.
absl::Status ValidateCollections(absl::string_view name,
                                 const v1::Collections& collections) {
  constexpr int kMaxCollections = 64;
  constexpr size_t kMaxCollectionNameBytes = 256;
  if (collections.names_size() > kMaxCollections) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", name, " is given ", collections.names_size(),
        " collections; at most ", kMaxCollections, " are allowed"));
  }
  for (const std::string& collection : collections.names()) {
    if (collection.empty() || collection.size() > kMaxCollectionNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Collection names of variable ", name, " must have 1 to ",
          kMaxCollectionNameBytes, " bytes, got one of ", collection.size()));
    }
  }
  return absl::OkStatus();
}

Shape RequestShape(const v1::GetVariableRequest& request) {
  if (!request.has_shape()) return Shape::Unknown();
  return Shape(std::vector<int64_t>(request.shape().dims().begin(),
                                    request.shape().dims().end()));
}

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

// Locks every variable's write lock in order; the caller unlocks.
template <typename V>
void LockAll(const std::vector<V>& vars) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (const auto& v : vars) v->write_mu.Lock();
}
template <typename V>
void UnlockAll(const std::vector<V>& vars) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (const auto& v : vars) v->write_mu.Unlock();
}

// INVALID_ARGUMENT if `request` asks for an embedding variable and `info` is
// a dense one, or the other way round, or for another embedding_dim.
absl::Status CheckKind(const v1::GetVariableRequest& request,
                       const v1::VariableInfo& info) {
  const std::string& name = request.name();
  if (request.has_embedding() && !info.has_embedding()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", name,
        " is a dense variable; an embedding variable cannot share its name."));
  }
  if (!request.has_embedding() && info.has_embedding()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Variable ", name,
        " is an embedding variable; a dense variable cannot share its name."));
  }
  if (request.has_embedding() &&
      request.embedding().embedding_dim() != info.embedding().embedding_dim()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Trying to share embedding variable ", name,
        ", but specified embedding_dim ", request.embedding().embedding_dim(),
        " and found embedding_dim ", info.embedding().embedding_dim(), "."));
  }
  return absl::OkStatus();
}

// The value of scalar variable `name`, an optimizer's input.
absl::StatusOr<double> ScalarValue(absl::string_view name, DType dtype,
                                   absl::Span<const int64_t> dims,
                                   const char* data) {
  if (!dims.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("The optimizer's input ", name,
                     " must be a scalar, not of shape ", ShapeString(dims)));
  }
  return VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    T v;
    memcpy(&v, data, sizeof(T));
    return ToDouble(v);
  });
}

}  // namespace

VariableTable::VariableTable(const TableOptions& options, Storage* storage)
    : options_(options), storage_(storage) {}

VariableTable::~VariableTable() {
  if (flusher_.joinable()) {
    stop_flusher_.Notify();
    flusher_.join();
  }
  if (const absl::Status status = Flush(); !status.ok()) {
    log::Log(log::Level::kError, "final_write_failed",
             {{"code", absl::StatusCodeToString(status.code())},
              {"error", status.message()},
              {"lost", "changes since the last successful store write"}});
  }
}

absl::StatusOr<std::unique_ptr<VariableTable>> VariableTable::Load(
    const TableOptions& options, Storage* storage) {
  std::unique_ptr<VariableTable> table(new VariableTable(options, storage));
  VS_RETURN_IF_ERROR(table->applied_.Load(*storage));
  absl::MutexLock l(&table->mu_);
  VS_RETURN_IF_ERROR(storage->LoadAll(
      [&](v1::StoredVariable meta, std::string data) -> absl::Status {
        table->mu_.AssertHeld();
        std::string name = meta.info().name();
        auto var = std::make_shared<Variable>(std::move(meta), std::move(data));
        table->IndexNames(*var, /*add=*/true);
        table->vars_.emplace(std::move(name), std::move(var));
        return absl::OkStatus();
      }));
  table->counters_.all_written_micros = absl::ToUnixMicros(absl::Now());
  if (options.durability.mode == Durability::Mode::kInterval) {
    table->flusher_ =
        std::thread([t = table.get()] { t->FlushEveryInterval(); });
  }
  return table;
}

// The pending changes and, for each variable they name that exists, its
// published state.
struct VariableTable::Captured {
  DirtySet dirty;
  struct Stored {
    v1::StoredVariable meta;
    std::shared_ptr<const std::string> data;
  };
  std::map<std::string, Stored, std::less<>> present;
};

absl::Status VariableTable::Commit(
    const std::function<void(StorageBatch&)>& write, DirtySet dirty,
    const std::function<void()>& publish) {
  if (options_.durability.mode == Durability::Mode::kInterval) {
    absl::ReaderMutexLock c(&commit_mu_);
    {
      absl::MutexLock d(&dirty_mu_);
      VS_RETURN_IF_ERROR(flush_error_);
      dirty_.Merge(std::move(dirty));
    }
    publish();
    return absl::OkStatus();
  }
  StorageBatch batch;
  write(batch);
  for (;;) {
    if (rewrite_pending_.load()) VS_RETURN_IF_ERROR(Flush());
    absl::ReaderMutexLock c(&commit_mu_);
    if (rewrite_pending_.load()) continue;  // a write failed meanwhile
    const absl::Status status = storage_->Write(batch);
    if (!status.ok()) {
      dirty.MarkFailed();
      absl::MutexLock d(&dirty_mu_);
      dirty_.Merge(std::move(dirty));
      rewrite_pending_.store(true);
      ReportWritable(false);
      return status;
    }
    publish();
    return absl::OkStatus();
  }
}

VariableTable::Captured VariableTable::Capture() {
  Captured captured;
  {
    absl::MutexLock d(&dirty_mu_);
    captured.dirty = std::exchange(dirty_, DirtySet());
  }
  absl::ReaderMutexLock l(&mu_);
  for (const auto& [name, dirty] : captured.dirty.variables) {
    if (std::shared_ptr<Variable> var = Lookup(name)) {
      absl::ReaderMutexLock v(&var->mu);
      captured.present.emplace(name, Captured::Stored{var->meta, var->data});
    }
  }
  return captured;
}

absl::Status VariableTable::WriteCaptured(Captured& captured) {
  if (captured.dirty.empty()) return absl::OkStatus();
  StorageBatch batch;
  for (const auto& [name, dirty] : captured.dirty.variables) {
    auto it = captured.present.find(name);
    if (dirty.reset || it == captured.present.end()) {
      batch.DeleteVariable(name);
    }
    if (it == captured.present.end()) continue;
    const v1::StoredVariable& meta = it->second.meta;
    const std::string& data = *it->second.data;
    if (dirty.whole) {
      batch.PutVariable(meta, data);
      continue;
    }
    batch.PutMeta(meta);
    for (int64_t chunk : dirty.chunks) {
      batch.PutChunks(meta, data, chunk, chunk + 1);
    }
  }
  for (const auto& [client_id, client] : captured.dirty.clients) {
    for (const auto& [sequence, result] : client.records) {
      if (result.has_value()) {
        batch.PutApplied(client_id, sequence, *result);
      } else {
        batch.DeleteApplied(client_id, sequence);
      }
    }
  }
  const absl::Time start = absl::Now();
  absl::Status status = storage_->Recover();
  if (status.ok()) status = storage_->Write(batch);
  counters_.flushes.Add();
  counters_.flush_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  if (!status.ok()) {
    counters_.flush_failures.Add();
    absl::MutexLock d(&dirty_mu_);
    captured.dirty.Merge(std::exchange(dirty_, DirtySet()));
    dirty_ = std::move(captured.dirty);
  }
  return status;
}

absl::Status VariableTable::RecordFlush(absl::Status status) {
  absl::MutexLock d(&dirty_mu_);
  flush_error_ = status;
  ReportWritable(status.ok());
  if (status.ok()) {
    rewrite_pending_.store(false);
    counters_.all_written_micros = absl::ToUnixMicros(absl::Now());
  }
  return status;
}

void VariableTable::ReportWritable(bool writable) {
  if (std::exchange(store_writable_, writable) == writable) return;
  if (options_.on_store_writable) options_.on_store_writable(writable);
}

absl::Status VariableTable::Flush() {
  absl::MutexLock f(&flush_mu_);
  if (options_.durability.mode == Durability::Mode::kInterval) {
    Captured captured;
    {
      absl::MutexLock c(&commit_mu_);
      captured = Capture();
    }
    // Changes go on meanwhile: what was captured stays unchanged (published
    // buffers are copied on write while shared).
    return RecordFlush(WriteCaptured(captured));
  }
  if (!rewrite_pending_.load()) return absl::OkStatus();
  // No change may reach the store before the rewrite.
  absl::MutexLock c(&commit_mu_);
  Captured captured = Capture();
  return RecordFlush(WriteCaptured(captured));
}

absl::StatusOr<StoreSummary> VariableTable::CopyStore(
    const std::function<absl::StatusOr<uint64_t>()>& copy) {
  VS_RETURN_IF_ERROR(Flush());  // most of what is pending, without a pause
  absl::MutexLock f(&flush_mu_);
  absl::MutexLock c(&commit_mu_);
  Captured captured = Capture();
  VS_RETURN_IF_ERROR(RecordFlush(WriteCaptured(captured)));
  StoreSummary summary;
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
  return summary;
}

void VariableTable::FlushEveryInterval() {
  const absl::Duration interval = options_.durability.interval;
  bool failing = false;
  while (!stop_flusher_.WaitForNotificationWithTimeout(interval)) {
    const absl::Status status = Flush();
    if (!status.ok() && !failing) {
      // Updates fail until a flush succeeds; it is retried every interval.
      log::Log(log::Level::kError, "flush_failed",
               {{"code", absl::StatusCodeToString(status.code())},
                {"error", status.message()},
                {"retry_seconds", absl::ToDoubleSeconds(interval)}});
    } else if (status.ok() && failing) {
      log::Log(log::Level::kInfo, "flush_recovered", {});
    }
    failing = !status.ok();
  }
}

std::shared_ptr<VariableTable::Variable> VariableTable::Lookup(
    absl::string_view name) const {
  auto it = vars_.find(name);
  return it == vars_.end() ? nullptr : it->second;
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
    var = Lookup(name);
  }
  if (var == nullptr) {
    return WithNearMatches(absl::NotFoundError(absl::StrCat(
                               "Variable ", name, " does not exist.")),
                           name);
  }
  return var;
}

absl::StatusOr<std::vector<std::shared_ptr<VariableTable::Variable>>>
VariableTable::Parts(absl::string_view name) const {
  // Any part gives their number; it sorts among the parts and their slots.
  const std::string prefix = absl::StrCat(name, "/part_");
  int64_t num_parts = 0;
  for (auto it = vars_.lower_bound(prefix);
       it != vars_.end() && absl::StartsWith(it->first, prefix); ++it) {
    if (it->second->whole == name) {
      num_parts = it->second->num_parts;
      break;
    }
  }
  std::vector<std::shared_ptr<Variable>> parts;
  std::vector<std::string> missing;
  for (int64_t i = 0; i < num_parts; ++i) {
    std::string part_name = PartName(name, i);
    std::shared_ptr<Variable> part = Lookup(part_name);
    if (part != nullptr && part->whole == name) {
      parts.push_back(std::move(part));
    } else {
      missing.push_back(std::move(part_name));
    }
  }
  if (missing.empty()) return parts;
  constexpr size_t kMaxNamed = 10;
  const size_t n = missing.size();
  if (n > kMaxNamed) missing.resize(kMaxNamed);
  return absl::FailedPreconditionError(absl::StrCat(
      "Partitioned variable ", name, " is incomplete: ", n, " of its ",
      num_parts, n == 1 ? " parts is" : " parts are", " missing (",
      absl::StrJoin(missing, ", "), n > kMaxNamed ? ", ..." : "",
      "); restore it from a backup, or delete what is left: varscope rm -r ",
      name));
}

absl::Status VariableTable::CheckNewVariable(
    absl::string_view name, DType dtype, absl::Span<const int64_t> dims) const {
  VS_ASSIGN_OR_RETURN(const int64_t n, NumElements(dims));
  // Both fit in int64: NumElements is at most 2^50.
  const int64_t bytes = n * static_cast<int64_t>(DTypeSize(dtype));
  const absl::StatusOr<int64_t> row =
      dims.empty() ? absl::StatusOr<int64_t>(0) : NumElements(dims.subspan(1));
  std::string over;
  if (bytes > options_.max_variable_bytes) {
    over = absl::StrCat("needs ", bytes, " bytes");
  } else if (!row.ok() || *row * static_cast<int64_t>(DTypeSize(dtype)) >
                              options_.max_variable_bytes) {
    // A row (one index of the first axis) must fit too, even with no rows:
    // its size lays out the chunks and sizes row updates.
    over = absl::StrCat("has rows of shape ", ShapeString(dims.subspan(1)));
  } else {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "Variable ", name, " of shape ", ShapeString(dims), " and dtype ",
      DTypeName(dtype), " ", over, ", over this server's limit of ",
      options_.max_variable_bytes, " (--max-variable-bytes)"));
}

absl::StatusOr<v1::GetVariableResponse> VariableTable::GetVariable(
    const v1::GetVariableRequest& request) {
  const std::string& name = request.name();
  VS_RETURN_IF_ERROR(ValidateName(name));
  if (request.mode() != v1::CREATE && request.mode() != v1::REUSE &&
      request.mode() != v1::AUTO_REUSE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Unknown reuse mode ", static_cast<int>(request.mode()),
        " for variable ", name, "; expected CREATE, REUSE or AUTO_REUSE"));
  }
  if (!IsSupportedDType(request.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unsupported dtype ", static_cast<int>(request.dtype()),
                     " for variable ", name));
  }
  if (request.has_shape()) {
    VS_RETURN_IF_ERROR(
        ValidateDims(request.shape().dims(), /*allow_unknown=*/true));
    if (request.has_constraint()) {
      VS_RETURN_IF_ERROR(ValidateConstraint(request.constraint(), name,
                                            request.shape().dims_size()));
    }
  }
  VS_RETURN_IF_ERROR(ValidateCollections(name, request.collections()));
  const std::vector<std::string> keys = {name, PartName(name, 0)};

  for (;;) {
    std::shared_ptr<absl::Notification> wait;
    Plan plan;
    absl::StatusOr<v1::GetVariableResponse> decided;
    {
      absl::MutexLock l(&mu_);
      wait = Busy(keys);
      if (wait == nullptr) {
        decided = Decide(request, &plan);
        if (decided.ok() && !plan.parts.empty()) {
          plan.dtype = request.dtype();
          plan.trainable = !request.has_trainable() || request.trainable();
          plan.constraint = request.constraint();
          if (request.has_embedding()) plan.embedding = request.embedding();
          if (request.has_collections()) {
            plan.collections = request.collections();
          }
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

absl::StatusOr<v1::GetVariableResponse> VariableTable::Decide(
    const v1::GetVariableRequest& request, Plan* plan) const {
  VS_ASSIGN_OR_RETURN(const std::vector<std::shared_ptr<Variable>> parts,
                      Parts(request.name()));
  const bool has_partitioner =
      request.has_partitioner() &&
      request.partitioner().kind_case() != v1::Partitioner::KIND_NOT_SET;
  const bool is_scalar = request.has_shape() && request.shape().dims().empty();
  const bool reuse_partitioned =
      request.mode() == v1::REUSE && !has_partitioner && !parts.empty();
  return (has_partitioner && !is_scalar) || reuse_partitioned
             ? DecidePartitioned(request, parts, plan)
             : DecideSingle(request, plan);
}

absl::StatusOr<v1::GetVariableResponse> VariableTable::DecideSingle(
    const v1::GetVariableRequest& request, Plan* plan) const {
  const std::string& name = request.name();
  const DType dtype = request.dtype();
  if (Lookup(PartName(name, 0)) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "No partitioner was provided, but a partitioned version of the "
        "variable was found: ",
        name,
        "/part_0. Perhaps a variable of the same name was already created "
        "with partitioning?"));
  }
  const Shape shape = RequestShape(request);
  if (std::shared_ptr<Variable> var = Lookup(name)) {
    if (request.mode() == v1::CREATE) {
      return absl::AlreadyExistsError(absl::StrCat(
          "Variable ", name,
          " already exists, disallowed. Did you mean to set reuse=True or "
          "reuse=tf.AUTO_REUSE in VarScope?"));
    }
    VS_RETURN_IF_ERROR(CheckKind(request, var->Info()));
    if (!shape.IsCompatibleWith(Shape(var->dims))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Trying to share variable ", name, ", but specified shape ",
          shape.ToString(), " and found shape ", ShapeString(var->dims), "."));
    }
    if (dtype != var->dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Trying to share variable ", name, ", but specified dtype ",
          DTypeName(dtype), " and found dtype ", DTypeName(var->dtype), "."));
    }
    v1::GetVariableResponse response;
    *response.mutable_variable() = var->Info();
    return response;
  }
  if (request.mode() == v1::REUSE) {
    return absl::NotFoundError(absl::StrCat(
        "Variable ", name,
        " does not exist, or was not created with tf.get_variable(). Did you "
        "mean to set reuse=tf.AUTO_REUSE in VarScope?"));
  }
  if (!shape.IsFullyDefined()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Shape of a new variable (", name,
        ") must be fully defined, but instead was ", shape.ToString(), "."));
  }
  VS_RETURN_IF_ERROR(CheckNewVariable(name, dtype, shape.dims()));
  const v1::Initializer init =
      ResolveDefaultInitializer(request.initializer(), dtype);
  VS_RETURN_IF_ERROR(ValidateInitializer(init, dtype, shape.dims()));
  plan->init = init;
  plan->full_dims = shape.dims();
  Plan::Part part;
  v1::VariableInfo* info = part.meta.mutable_info();
  info->set_name(name);
  info->mutable_shape()->mutable_dims()->Assign(shape.dims().begin(),
                                                shape.dims().end());
  part.offset.assign(shape.dims().size(), 0);
  plan->parts.push_back(std::move(part));
  return v1::GetVariableResponse();
}

absl::StatusOr<v1::GetVariableResponse> VariableTable::DecidePartitioned(
    const v1::GetVariableRequest& request,
    const std::vector<std::shared_ptr<Variable>>& parts, Plan* plan) const {
  const std::string& name = request.name();
  const DType dtype = request.dtype();
  const bool has_partitioner =
      request.partitioner().kind_case() != v1::Partitioner::KIND_NOT_SET;
  if (has_partitioner && Lookup(name) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "A partitioner was provided, but an unpartitioned version of the "
        "variable was found: ",
        name,
        ".  Perhaps a variable of the same name was already created without "
        "partitioning?"));
  }
  const Shape shape = RequestShape(request);
  std::optional<std::vector<int64_t>> partitions;
  std::vector<PartSlice> slices;
  if (request.mode() != v1::REUSE || has_partitioner) {
    if (!shape.IsFullyDefined()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Shape of a new partitioned variable must be fully defined, but "
          "instead was ",
          shape.ToString(), "."));
    }
    if (shape.rank() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "A partitioned Variable must have rank at least 1, shape: ",
          shape.ToString()));
    }
    VS_ASSIGN_OR_RETURN(partitions, ComputePartitions(request.partitioner(),
                                                      shape.dims(), dtype));
    VS_ASSIGN_OR_RETURN(slices,
                        SlicePartitions(name, shape.dims(), *partitions));
  }
  if (!parts.empty()) {
    const Variable& part0 = *parts.front();
    if (request.mode() == v1::CREATE) {
      return absl::AlreadyExistsError(
          absl::StrCat("Partitioned variable with name ", name,
                       " already exists. Did you mean to set reuse=True or "
                       "reuse=tf.AUTO_REUSE in VarScope?"));
    }
    const v1::VariableInfo info0 = part0.Info();
    const std::vector<int64_t> found_dims(
        info0.slice().full_shape().dims().begin(),
        info0.slice().full_shape().dims().end());
    const std::vector<int64_t> found_partitions(
        info0.slice().partitions().begin(), info0.slice().partitions().end());
    if (!shape.IsCompatibleWith(Shape(found_dims))) {
      return absl::InvalidArgumentError(
          absl::StrCat("Trying to reuse partitioned variable ", name,
                       ", but specified shape ", shape.ToString(),
                       " and found shape ", ShapeString(found_dims), "."));
    }
    if (dtype != part0.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("Trying to reuse partitioned variable ", name,
                       ", but specified dtype ", DTypeName(dtype),
                       " and found dtype ", DTypeName(part0.dtype), "."));
    }
    if (partitions.has_value() && *partitions != found_partitions) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Trying to reuse partitioned variable ", name,
          ", but specified partitions ", ListString(*partitions),
          " and found partitions ", ListString(found_partitions), "."));
    }
    v1::GetVariableResponse response;
    for (const std::shared_ptr<Variable>& part : parts) {
      *response.add_parts() = part->Info();
    }
    v1::VariableInfo* whole = response.mutable_variable();
    whole->set_name(name);
    whole->set_dtype(dtype);
    *whole->mutable_shape() = info0.slice().full_shape();
    whole->set_trainable(info0.trainable());
    if (info0.has_collections()) {
      *whole->mutable_collections() = info0.collections();
    }
    *whole->mutable_initializer() = info0.initializer();
    whole->set_create_time_micros(info0.create_time_micros());
    return response;
  }
  if (request.mode() == v1::REUSE) {
    return absl::NotFoundError(absl::StrCat(
        "PartitionedVariable ", name,
        " does not exist, or was not created with tf.get_variable(). Did you "
        "mean to set reuse=False or reuse=tf.AUTO_REUSE in VarScope?"));
  }
  const int64_t n = static_cast<int64_t>(slices.size());
  if (Lookup(PartName(name, 0)) != nullptr) {
    if (Lookup(PartName(name, n - 1)) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Partitioner returned a different partitioning than what was "
          "already found.  Partitioner returned ",
          n, " shards, and shard ", name, "/part_0 was found, but ", name,
          "/part_", n - 1, " was not."));
    }
    if (Lookup(PartName(name, n)) != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Partitioner returned a different partitioning than what was "
          "already found.  Partitioner returned ",
          n, " shards, and shard ", name,
          "/part_0 was found, but so was the "
          "extra shard ",
          name, "/part_", n, "."));
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "Variables ", name, "/part_0 to ", name, "/part_", n - 1,
        " exist but were not created as parts of partitioned variable ", name,
        "."));
  }
  const v1::Initializer init =
      ResolveDefaultInitializer(request.initializer(), dtype);
  VS_RETURN_IF_ERROR(ValidateInitializer(init, dtype, shape.dims()));
  plan->init = init;
  plan->partitioned = true;
  plan->full_dims = shape.dims();
  for (int64_t i = 0; i < n; ++i) {
    const std::string part_name = PartName(name, i);
    VS_RETURN_IF_ERROR(CheckNewVariable(part_name, dtype, slices[i].dims));
    Plan::Part part;
    v1::VariableInfo* info = part.meta.mutable_info();
    info->set_name(part_name);
    info->mutable_shape()->mutable_dims()->Assign(slices[i].dims.begin(),
                                                  slices[i].dims.end());
    v1::SliceInfo* slice = info->mutable_slice();
    slice->set_full_name(name);
    slice->mutable_full_shape()->mutable_dims()->Assign(shape.dims().begin(),
                                                        shape.dims().end());
    slice->mutable_var_offset()->Assign(slices[i].offset.begin(),
                                        slices[i].offset.end());
    slice->mutable_partitions()->Assign(partitions->begin(), partitions->end());
    slice->set_part_index(static_cast<int32_t>(i));
    part.offset = slices[i].offset;
    plan->parts.push_back(std::move(part));
  }
  return v1::GetVariableResponse();
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
    v1::VariableInfo* info = part.meta.mutable_info();
    const std::vector<int64_t> dims(info->shape().dims().begin(),
                                    info->shape().dims().end());
    VS_ASSIGN_OR_RETURN(
        Tensor value, InitialValue(plan.init, seed, plan.dtype, plan.full_dims,
                                   part.offset, dims));
    info->set_dtype(plan.dtype);
    info->set_version(1);
    info->set_trainable(plan.trainable);
    if (plan.collections.has_value()) {
      *info->mutable_collections() = *plan.collections;
    }
    *info->mutable_initializer() = stored_init;
    if (plan.embedding.has_value())
      *info->mutable_embedding() = *plan.embedding;
    if (plan.constraint.kind_case() != v1::Constraint::KIND_NOT_SET) {
      *info->mutable_constraint() = plan.constraint;
    }
    info->set_create_time_micros(now);
    info->set_update_time_micros(now);
    info->set_byte_size(static_cast<int64_t>(value.bytes().size()));
    part.meta.set_chunk_bytes(
        ChunkBytes(dims, plan.dtype, options_.chunk_bytes));
    ChecksumChunks(
        value.bytes(), 0,
        Storage::NumChunks(info->byte_size(), part.meta.chunk_bytes()),
        part.meta);
    if (plan.partitioned) {
      *response.add_parts() = *info;
    } else {
      *response.mutable_variable() = *info;
    }
    created.push_back(
        std::make_shared<Variable>(std::move(part.meta), value.ReleaseBytes()));
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
  VS_RETURN_IF_ERROR(Commit(
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
  auto [data, version] = var->Snapshot();
  const int64_t row_bytes = RowBytes(var->dims, var->dtype);
  std::vector<int64_t> dims = var->dims;
  dims[0] = static_cast<int64_t>(rows.size());
  Tensor out(var->dtype, dims);
  for (size_t i = 0; i < rows.size(); ++i) {
    memcpy(out.mutable_data() + i * row_bytes,
           data->data() + rows[i] * row_bytes, static_cast<size_t>(row_bytes));
  }
  v1::GatherResponse response;
  response.set_version(version);
  TensorToProto(std::move(out), response.mutable_rows());
  return response;
}

// One decoded update of a batch.
struct VariableTable::Op {
  std::string name;
  std::optional<int64_t> expected_version;
  v1::Update::OpCase kind = v1::Update::OP_NOT_SET;
  Tensor tensor;  // the value, delta, rows or gradient
  std::optional<Tensor> indices;
  v1::Scatter::Mode mode = v1::Scatter::ADD;
  std::optional<OptimizerStep> optimizer;
};

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
  if (request.updates().empty()) {
    return absl::InvalidArgumentError("A batch needs at least one update");
  }
  // Decode every update.
  std::vector<Op> ops;
  for (v1::Update& update : *request.mutable_updates()) {
    VS_RETURN_IF_ERROR(ValidateName(update.name()));
    Op op;
    op.name = update.name();
    if (update.has_expected_version()) {
      op.expected_version = update.expected_version();
    }
    op.kind = update.op_case();
    switch (update.op_case()) {
      case v1::Update::kAssign: {
        VS_ASSIGN_OR_RETURN(op.tensor,
                            TensorFromProto(update.mutable_assign()));
        break;
      }
      case v1::Update::kAssignAdd: {
        VS_ASSIGN_OR_RETURN(op.tensor,
                            TensorFromProto(update.mutable_assign_add()));
        break;
      }
      case v1::Update::kAssignMul: {
        VS_ASSIGN_OR_RETURN(op.tensor,
                            TensorFromProto(update.mutable_assign_mul()));
        break;
      }
      case v1::Update::kScatter: {
        VS_ASSIGN_OR_RETURN(
            op.tensor,
            TensorFromProto(update.mutable_scatter()->mutable_rows()));
        VS_ASSIGN_OR_RETURN(
            op.indices,
            TensorFromProto(update.mutable_scatter()->mutable_indices()));
        op.mode = update.scatter().mode();
        break;
      }
      case v1::Update::kApplyGradient: {
        v1::ApplyGradient* apply = update.mutable_apply_gradient();
        VS_ASSIGN_OR_RETURN(op.tensor,
                            TensorFromProto(apply->mutable_gradient()));
        if (apply->has_indices()) {
          VS_ASSIGN_OR_RETURN(op.indices,
                              TensorFromProto(apply->mutable_indices()));
        }
        VS_ASSIGN_OR_RETURN(op.optimizer,
                            OptimizerStep::Resolve(apply->optimizer()));
        break;
      }
      case v1::Update::OP_NOT_SET:
        return absl::InvalidArgumentError(
            absl::StrCat("The update of ", update.name(), " has no operation"));
    }
    ops.push_back(std::move(op));
  }

  // Every variable involved, slots included (created on demand as
  // TensorFlow's optimizers do), by name.
  std::map<std::string, std::shared_ptr<Variable>> involved;
  for (const Op& op : ops) {
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

  // Lock them all in name order; read their published state.
  struct Working {
    Variable* var;
    v1::StoredVariable meta;
    WorkingCopy copy;
    bool touched = false;
  };
  std::vector<std::shared_ptr<Variable>> locked;
  for (auto& [name, var] : involved) locked.push_back(var);
  LockAll(locked);
  struct Unlock {
    std::vector<std::shared_ptr<Variable>>& vars;
    ~Unlock() { UnlockAll(vars); }
  } unlock{locked};
  std::map<std::string, Working> working;
  for (auto& [name, var] : involved) {
    var->write_mu.AssertHeld();
    if (var->deleted) {
      return absl::NotFoundError(
          absl::StrCat("Variable ", name, " does not exist (deleted)."));
    }
    absl::ReaderMutexLock l(&var->mu);
    working.emplace(
        name, Working{var.get(), var->meta,
                      WorkingCopy(var->data, RowBytes(var->dims, var->dtype),
                                  var->chunk_bytes)});
  }
  for (const Op& op : ops) {
    const int64_t version = working.at(op.name).meta.info().version();
    if (op.expected_version.has_value() && *op.expected_version != version) {
      return absl::AbortedError(
          absl::StrCat("Variable ", op.name, " is at version ", version,
                       ", not the expected version ", *op.expected_version));
    }
  }

  // Apply in order; a later update of a variable sees the earlier ones.
  // Scalars multiplied once after all updates (Adam's beta powers).
  std::map<std::string, double> advances;
  for (Op& op : ops) {
    Working& w = working.at(op.name);
    const Variable& var = *w.var;
    w.touched = true;
    const int64_t row_elems =
        w.copy.row_bytes() / static_cast<int64_t>(DTypeSize(var.dtype));
    switch (op.kind) {
      case v1::Update::kAssign:
        VS_RETURN_IF_ERROR(ShapeMismatch("assign a tensor", op.name, op.tensor,
                                         var.dims, var.dtype));
        w.copy.SetWhole(op.tensor.ReleaseBytes());
        break;
      case v1::Update::kAssignAdd:
        VS_RETURN_IF_ERROR(ShapeMismatch("add a tensor", op.name, op.tensor,
                                         var.dims, var.dtype));
        if (!SupportsAdd(var.dtype)) {
          return absl::InvalidArgumentError(
              absl::StrCat("Cannot add to variable ", op.name, " of dtype ",
                           DTypeName(var.dtype)));
        }
        AddInPlace(var.dtype, op.tensor.bytes().data(), w.copy.MutableWhole(),
                   op.tensor.num_elements());
        break;
      case v1::Update::kAssignMul:
        VS_RETURN_IF_ERROR(ShapeMismatch("multiply by a tensor", op.name,
                                         op.tensor, var.dims, var.dtype));
        if (!SupportsAdd(var.dtype)) {
          return absl::InvalidArgumentError(
              absl::StrCat("Cannot multiply variable ", op.name, " of dtype ",
                           DTypeName(var.dtype)));
        }
        MulInPlace(var.dtype, op.tensor.bytes().data(), w.copy.MutableWhole(),
                   op.tensor.num_elements());
        break;
      case v1::Update::kScatter: {
        if (var.dims.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "Cannot scatter rows into scalar variable ", op.name));
        }
        VS_ASSIGN_OR_RETURN(std::vector<int64_t> rows,
                            RowIndices(*op.indices, op.name, var.dims[0]));
        VS_RETURN_IF_ERROR(CheckRows("scatter a tensor", op.name, op.tensor,
                                     rows.size(), var.dims, var.dtype));
        const bool add = op.mode == v1::Scatter::ADD;
        if (add && !SupportsAdd(var.dtype)) {
          return absl::InvalidArgumentError(
              absl::StrCat("Cannot add to variable ", op.name, " of dtype ",
                           DTypeName(var.dtype)));
        }
        const char* src = op.tensor.bytes().data();
        for (size_t i = 0; i < rows.size(); ++i) {
          const char* row = src + i * w.copy.row_bytes();
          if (add) {
            AddInPlace(var.dtype, row, w.copy.MutableRow(rows[i]), row_elems);
          } else {
            memcpy(w.copy.MutableRow(rows[i]), row,
                   static_cast<size_t>(w.copy.row_bytes()));
          }
        }
        break;
      }
      case v1::Update::kApplyGradient: {
        OptimizerStep& optimizer = *op.optimizer;
        std::vector<Working*> slots;
        for (const SlotSpec& slot : optimizer.slots()) {
          Working& s = working.at(JoinName(op.name, slot.suffix));
          s.touched = true;
          slots.push_back(&s);
        }
        VS_RETURN_IF_ERROR(optimizer.ReadInputs(
            [&](const std::string& name) -> absl::StatusOr<double> {
              Working& input = working.at(name);
              return ScalarValue(name, input.var->dtype, input.var->dims,
                                 input.copy.Whole());
            }));
        for (auto& [name, factor] : optimizer.Advances()) {
          advances[name] = factor;
        }
        const v1::VariableInfo& info = w.meta.info();
        if (!op.indices.has_value()) {
          VS_RETURN_IF_ERROR(ShapeMismatch("apply a gradient", op.name,
                                           op.tensor, var.dims, var.dtype));
          std::vector<char*> slot_data;
          for (Working* slot : slots) {
            slot_data.push_back(slot->copy.MutableWhole());
          }
          optimizer.ApplyElements(var.dtype, op.tensor.num_elements(),
                                  w.copy.MutableWhole(), slot_data,
                                  op.tensor.bytes().data());
          if (info.has_constraint()) {
            ApplyConstraint(info.constraint(), var.dtype, var.dims,
                            w.copy.MutableWhole());
          }
        } else {
          if (info.has_constraint()) {
            // As TensorFlow's optimizers: a constraint needs the whole
            // variable, a sparse step touches some rows.
            return absl::InvalidArgumentError(absl::StrCat(
                "Cannot use a constraint function on a sparse variable: ",
                op.name, " has a constraint and got a sparse gradient"));
          }
          if (var.dims.empty()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "Cannot apply a sparse gradient to scalar variable ", op.name));
          }
          VS_ASSIGN_OR_RETURN(std::vector<int64_t> rows,
                              RowIndices(*op.indices, op.name, var.dims[0]));
          VS_RETURN_IF_ERROR(CheckRows("apply a gradient", op.name, op.tensor,
                                       rows.size(), var.dims, var.dtype));
          // IndexedSlices: sum the gradient rows of duplicate indices, then
          // take one step per distinct row.
          std::vector<size_t> order(rows.size());
          for (size_t i = 0; i < order.size(); ++i) order[i] = i;
          std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return rows[a] < rows[b];
          });
          const size_t row_bytes = static_cast<size_t>(w.copy.row_bytes());
          std::string summed(row_bytes, '\0');
          for (size_t i = 0; i < order.size();) {
            const int64_t row = rows[order[i]];
            memcpy(summed.data(),
                   op.tensor.bytes().data() + order[i] * row_bytes, row_bytes);
            size_t j = i + 1;
            for (; j < order.size() && rows[order[j]] == row; ++j) {
              AddInPlace(var.dtype,
                         op.tensor.bytes().data() + order[j] * row_bytes,
                         summed.data(), row_elems);
            }
            std::vector<char*> slot_rows;
            for (Working* slot : slots) {
              slot_rows.push_back(slot->copy.MutableRow(row));
            }
            optimizer.ApplyElements(var.dtype, row_elems,
                                    w.copy.MutableRow(row), slot_rows,
                                    summed.data());
            i = j;
          }
        }
        break;
      }
      case v1::Update::OP_NOT_SET:
        break;
    }
  }

  for (const auto& [name, factor] : advances) {
    Working& w = working.at(name);
    w.touched = true;
    VisitDType(w.var->dtype, [&](auto zero) {
      using T = decltype(zero);
      const T by = FromDouble<T>(factor);
      MulInPlace(w.var->dtype, reinterpret_cast<const char*>(&by),
                 w.copy.MutableWhole(), 1);
    });
  }

  // One store write for everything, then publish under every variable's
  // lock at once.
  const int64_t now = NowMicros();
  DirtySet dirty;
  for (auto& [name, w] : working) {
    if (!w.touched) continue;
    v1::VariableInfo* info = w.meta.mutable_info();
    info->set_version(info->version() + 1);
    info->set_update_time_micros(now);
    w.copy.UpdateChecksums(w.meta);
    w.copy.MarkChanged(name, dirty);
  }
  v1::BatchUpdateResponse response;
  for (const Op& op : ops) {
    Working& w = working.at(op.name);
    response.add_versions(w.meta.info().version());
    if (request.return_values()) {
      VS_ASSIGN_OR_RETURN(
          Tensor value,
          Tensor::FromBytes(w.var->dtype, w.var->dims, w.copy.CopyContents()));
      TensorToProto(std::move(value), response.add_values());
    }
  }
  std::optional<AppliedUpdates::Record> record;
  if (request.has_id()) {
    record = applied_.ToRecord(request.id(), response);
    const std::string& client_id = request.id().client_id();
    dirty.AddApplied(client_id, request.id().sequence(), record->result);
    for (int64_t old : record->forget) dirty.AddApplied(client_id, old, {});
  }
  VS_RETURN_IF_ERROR(Commit(
      [&](StorageBatch& batch) {
        for (auto& [name, w] : working) {
          if (w.touched) w.copy.Persist(w.meta, batch);
        }
        if (record.has_value()) {
          batch.PutApplied(request.id().client_id(), request.id().sequence(),
                           record->result);
          for (int64_t old : record->forget) {
            batch.DeleteApplied(request.id().client_id(), old);
          }
        }
      },
      std::move(dirty),
      [&] {
        for (auto& [name, w] : working) w.var->mu.Lock();
        for (auto& [name, w] : working) {
          w.var->mu.AssertHeld();
          if (!w.touched) continue;
          w.var->meta = std::move(w.meta);
          w.copy.Publish(w.var->data);
        }
        for (auto& [name, w] : working) w.var->mu.Unlock();
      }));
  counters_.updates_applied.Add(static_cast<double>(ops.size()));
  return response;
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
      if (Lookup(target) != nullptr || busy_.contains(target)) {
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
      part = Lookup(absl::string_view(var->name).substr(
          0, var->name.size() - slot.size() - 1));
      if (part == nullptr || part->whole.empty()) continue;
    }
    if (!checked.emplace(part->whole, slot).second) continue;
    for (int64_t i = 0; i < part->num_parts; ++i) {
      std::string member = PartName(part->whole, i);
      if (!slot.empty()) member = JoinName(member, slot);
      if (taken.contains(member) || Lookup(member) == nullptr) continue;
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
  DirtySet dirty;
  for (const std::string& n : selection.names) dirty.AddReset(n);
  LockAll(selection.vars);
  const absl::Status status = Commit(
      [&](StorageBatch& batch) {
        for (const std::string& n : selection.names) batch.DeleteVariable(n);
      },
      std::move(dirty), [&] { Retire(selection, {}); });
  Release(selection);
  UnlockAll(selection.vars);
  VS_RETURN_IF_ERROR(status);
  return static_cast<int64_t>(selection.names.size());
}

absl::StatusOr<int64_t> VariableTable::Rename(absl::string_view old_name,
                                              absl::string_view new_name) {
  VS_RETURN_IF_ERROR(ValidateName(old_name));
  VS_RETURN_IF_ERROR(ValidateName(new_name));
  if (old_name == new_name || IsUnderScope(new_name, old_name) ||
      IsUnderScope(old_name, new_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Cannot rename ", old_name, " to ", new_name,
                     ": one is the other or lies inside it"));
  }
  // old_name[/rest] -> new_name[/rest]
  auto renamed = [&](const std::string& n) {
    return absl::StrCat(new_name, n.substr(old_name.size()));
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
    v1::VariableInfo* info = meta.mutable_info();
    info->set_name(selection.targets[i]);
    info->set_update_time_micros(now);
    if (info->has_slice()) {
      const std::string& whole = info->slice().full_name();
      if (whole == old_name || IsUnderScope(whole, old_name)) {
        info->mutable_slice()->set_full_name(renamed(whole));
      }
    }
    dirty.AddReset(selection.names[i]);
    dirty.AddReset(selection.targets[i]);
    moved.push_back(
        std::make_shared<Variable>(std::move(meta), std::move(data)));
  }
  const absl::Status status = Commit(
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
    ++totals.variables;
    absl::ReaderMutexLock v(&var->mu);
    totals.bytes += static_cast<int64_t>(var->data->size());
  }
  return totals;
}

}  // namespace varscope::server
