#include "server/table/sync_replicas.h"

#include <cstring>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dtype.h"
#include "common/names.h"
#include "common/shape.h"
#include "common/status.h"
#include "common/tensor.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/table/optimizers.h"
#include "server/table/tensor_ops.h"

namespace varscope::server {
std::string GlobalStepName(const std::string& name) {
  return name.empty() ? "global_step" : name;
}

namespace {

// Elements per row (first axis) of a tensor of `dims`.
int64_t RowElements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

// The elements of `t` as doubles.
std::vector<double> ToDoubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.num_elements()));
  VisitDType(t.dtype(), [&](auto zero) {
    using T = decltype(zero);
    absl::Span<const T> in = t.flat<T>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = ToDouble(in[i]);
  });
  return out;
}

// Writes values[i] / divisor as elements of `dtype` to `out`.
void StoreMean(DType dtype, absl::Span<const double> values, double divisor,
               char* out) {
  VisitDType(dtype, [&](auto zero) {
    using T = decltype(zero);
    for (size_t i = 0; i < values.size(); ++i) {
      const T v = FromDouble<T>(values[i] / divisor);
      memcpy(out + i * sizeof(T), &v, sizeof(T));
    }
  });
}

// What a gradient is for: every contribution to a step has the same.
struct GradientSpec {
  std::string name;
  v1::Optimizer optimizer;
  DType dtype = v1::DT_INVALID;
  std::vector<int64_t> dims;  // the variable's
  bool sparse = false;
};

// One worker's gradient for one variable, checked against the variable.
struct Gradient {
  GradientSpec spec;
  std::vector<int64_t> rows;   // sparse: the rows `values` are for
  std::vector<double> values;  // dense: every element; sparse: per row
};

absl::StatusOr<Gradient> DecodeGradient(const v1::Update& update,
                                        const VariableTable& table) {
  if (update.op_case() != v1::Update::kApplyGradient ||
      update.has_expected_version()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SyncApply takes gradients (apply_gradient updates "
                     "without an expected version); the update of ",
                     update.name(), " is not one"));
  }
  const v1::ApplyGradient& apply = update.apply_gradient();
  VS_RETURN_IF_ERROR(OptimizerStep::Resolve(apply.optimizer()).status());
  VS_ASSIGN_OR_RETURN(v1::VariableInfo info, table.Stat(update.name()));
  Gradient g;
  g.spec.name = update.name();
  g.spec.optimizer = apply.optimizer();
  g.spec.dtype = info.dtype();
  g.spec.dims.assign(info.shape().dims().begin(), info.shape().dims().end());
  if (!IsFloating(g.spec.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Optimizers train floating-point variables; ", g.spec.name,
                     " is ", DTypeName(g.spec.dtype)));
  }
  v1::Tensor gradient_proto = apply.gradient();
  VS_ASSIGN_OR_RETURN(Tensor gradient, TensorFromProto(&gradient_proto));
  if (!apply.has_indices()) {
    VS_RETURN_IF_ERROR(ShapeMismatch("apply a gradient", g.spec.name, gradient,
                                     g.spec.dims, g.spec.dtype));
    g.values = ToDoubles(gradient);
    return g;
  }
  if (g.spec.dims.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Cannot apply a sparse gradient to scalar variable ", g.spec.name));
  }
  v1::Tensor indices_proto = apply.indices();
  VS_ASSIGN_OR_RETURN(Tensor indices, TensorFromProto(&indices_proto));
  VS_ASSIGN_OR_RETURN(g.rows, RowIndices(indices, g.spec.name, g.spec.dims[0]));
  VS_RETURN_IF_ERROR(CheckRows("apply a gradient", g.spec.name, gradient,
                               g.rows.size(), g.spec.dims, g.spec.dtype));
  g.spec.sparse = true;
  g.values = ToDoubles(gradient);
  return g;
}

}  // namespace

// The gradients of the current step, summed in float64.
struct SyncReplicas::Accumulator {
  struct Sum {
    GradientSpec spec;
    std::vector<double> dense;
    // Sparse: per row, the sum of its gradients and how many workers sent
    // one (duplicates within one worker's gradient are summed first).
    std::map<int64_t, std::pair<std::vector<double>, int64_t>> rows;
  };

  // Starts over at global step `at`.
  void Reset(int64_t at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    step = at;
    accumulated = 0;
    sums.clear();
    others.clear();
    applied.clear();
  }

  // Whether the step has its contributions and, on the global step's shard
  // (`home`), every other shard of the step applied its part.
  bool Complete(bool home) const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    return accumulated == replicas_to_aggregate &&
           (!home || applied.size() == others.size());
  }

  // INVALID_ARGUMENT unless `grads` are for this step's variables, in the
  // same order, with the same optimizer, and the same other shards.
  absl::Status Matches(const std::vector<Gradient>& grads, int32_t replicas,
                       const std::vector<int32_t>& other_shards) const
      ABSL_SHARED_LOCKS_REQUIRED(mu) {
    if (replicas != replicas_to_aggregate) {
      return absl::InvalidArgumentError(
          absl::StrCat("This step aggregates ", replicas_to_aggregate,
                       " replicas; the contribution asks for ", replicas));
    }
    if (other_shards != others) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Every contribution to a step must span the same shards: this "
          "step's variables are also on shards [",
          absl::StrJoin(others, ", "), "], the contribution's on [",
          absl::StrJoin(other_shards, ", "), "]"));
    }
    bool same = grads.size() == sums.size();
    for (size_t i = 0; same && i < grads.size(); ++i) {
      const GradientSpec& a = grads[i].spec;
      const GradientSpec& b = sums[i].spec;
      same = a.name == b.name && a.sparse == b.sparse &&
             google::protobuf::util::MessageDifferencer::Equals(a.optimizer,
                                                                b.optimizer);
    }
    if (!same) {
      return absl::InvalidArgumentError(
          "Every contribution to a step must update the same variables, in "
          "the same order, dense or sparse alike, with the same optimizer");
    }
    return absl::OkStatus();
  }

  void Add(const std::vector<Gradient>& grads)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (sums.empty()) {
      for (const Gradient& g : grads) {
        sums.push_back(
            {g.spec, std::vector<double>(g.spec.sparse ? 0 : g.values.size())});
      }
    }
    for (size_t i = 0; i < grads.size(); ++i) {
      const Gradient& g = grads[i];
      Sum& sum = sums[i];
      if (!g.spec.sparse) {
        for (size_t k = 0; k < g.values.size(); ++k)
          sum.dense[k] += g.values[k];
        continue;
      }
      const size_t row_elems = static_cast<size_t>(RowElements(g.spec.dims));
      absl::flat_hash_set<int64_t> seen;
      for (size_t r = 0; r < g.rows.size(); ++r) {
        auto& [values, workers] = sum.rows[g.rows[r]];
        values.resize(row_elems);
        for (size_t k = 0; k < row_elems; ++k) {
          values[k] += g.values[r * row_elems + k];
        }
        if (seen.insert(g.rows[r]).second) ++workers;
      }
    }
    ++accumulated;
  }

  // The mean gradients as one batch, with the global step's increment when
  // `global_step` is not empty.
  v1::BatchUpdateRequest MeanUpdate(const std::string& global_step) const
      ABSL_SHARED_LOCKS_REQUIRED(mu) {
    v1::BatchUpdateRequest batch;
    for (const Sum& sum : sums) {
      const GradientSpec& spec = sum.spec;
      v1::Update* update = batch.add_updates();
      update->set_name(spec.name);
      v1::ApplyGradient* apply = update->mutable_apply_gradient();
      *apply->mutable_optimizer() = spec.optimizer;
      std::vector<int64_t> dims = spec.dims;
      if (!spec.sparse) {
        Tensor mean(spec.dtype, dims);
        StoreMean(spec.dtype, sum.dense, accumulated, mean.mutable_data());
        TensorToProto(std::move(mean), apply->mutable_gradient());
        continue;
      }
      dims[0] = static_cast<int64_t>(sum.rows.size());
      Tensor mean(spec.dtype, dims);
      const size_t row_bytes =
          static_cast<size_t>(RowElements(spec.dims)) * DTypeSize(spec.dtype);
      std::vector<int64_t> rows;
      for (const auto& [row, entry] : sum.rows) {
        StoreMean(spec.dtype, entry.first, static_cast<double>(entry.second),
                  mean.mutable_data() + rows.size() * row_bytes);
        rows.push_back(row);
      }
      TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {dims[0]}, rows),
                    apply->mutable_indices());
      TensorToProto(std::move(mean), apply->mutable_gradient());
    }
    if (global_step.empty()) return batch;
    v1::Update* increment = batch.add_updates();
    increment->set_name(global_step);
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {int64_t{1}}),
                  increment->mutable_assign_add());
    return batch;
  }

  absl::Mutex mu;
  int64_t step ABSL_GUARDED_BY(mu) = -1;  // the global step being gathered
  int32_t replicas_to_aggregate ABSL_GUARDED_BY(mu) = 0;
  std::vector<Sum> sums ABSL_GUARDED_BY(mu);
  int32_t accumulated ABSL_GUARDED_BY(mu) = 0;
  // The step's other shards (SyncShards.others) and those reported applied.
  std::vector<int32_t> others ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<int32_t> applied ABSL_GUARDED_BY(mu);
  int64_t stale_dropped ABSL_GUARDED_BY(mu) = 0;
  // Each client's last contribution: its sequence number and the reply.
  absl::flat_hash_map<std::string, std::pair<int64_t, v1::SyncApplyResponse>>
      last ABSL_GUARDED_BY(mu);
};

absl::StatusOr<int64_t> SyncReplicas::GlobalStep(
    const std::string& name) const {
  VS_ASSIGN_OR_RETURN(VariableTable::SharedValue value,
                      table_->ReadShared(name));
  if (value.dtype != v1::DT_INT64 || !value.dims.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Global step ", name, " must be a scalar int64 variable, not ",
        DTypeName(value.dtype), " of shape ", ShapeString(value.dims)));
  }
  int64_t step;
  memcpy(&step, value.bytes->data(), sizeof(step));
  return step;
}

namespace {

// INVALID_ARGUMENT unless `shards` describes a part of a contribution.
absl::Status CheckShards(const v1::SyncShards& shards) {
  if (shards.global_step_elsewhere() && !shards.applied().empty()) {
    return absl::InvalidArgumentError(
        "A contribution's part for a shard without the global step "
        "(global_step_elsewhere) reports no applied shards");
  }
  for (int i = 0; i < shards.others_size(); ++i) {
    if (shards.others(i) < 0 ||
        (i > 0 && shards.others(i) <= shards.others(i - 1))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "The other shards of a contribution must be distinct shard indices "
          "in increasing order, not [",
          absl::StrJoin(shards.others(), ", "), "]"));
    }
  }
  for (const int32_t shard : shards.applied()) {
    if (!absl::c_binary_search(shards.others(), shard)) {
      return absl::InvalidArgumentError(
          absl::StrCat("A contribution reports shard ", shard,
                       " applied, but its other shards are [",
                       absl::StrJoin(shards.others(), ", "), "]"));
    }
  }
  return absl::OkStatus();
}

// The exactly-once id under which a shard without the global step records,
// in the write of the step itself, that it applied `step` of `accumulator`:
// a restart forgets the accumulator, not which steps it applied.
v1::UpdateId StepId(absl::string_view accumulator, int64_t step) {
  v1::UpdateId id;
  id.set_client_id(
      absl::StrCat("sync-replicas/",
                   absl::Hex(StableHash(accumulator, 0), absl::kZeroPad16)));
  id.set_sequence(step + 1);
  return id;
}

}  // namespace

absl::StatusOr<v1::SyncApplyResponse> SyncReplicas::Apply(
    const v1::SyncApplyRequest& request) {
  if (request.accumulator().empty()) {
    return absl::InvalidArgumentError("A SyncApply needs an accumulator name");
  }
  if (request.replicas_to_aggregate() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("replicas_to_aggregate must be at least 1, not ",
                     request.replicas_to_aggregate()));
  }
  const v1::SyncShards& shards = request.shards();
  VS_RETURN_IF_ERROR(CheckShards(shards));
  if (shards.global_step_elsewhere() && request.step() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "A contribution's step must not be negative, not ", request.step()));
  }
  // Only the global step's shard may have nothing but the step to count.
  if (request.updates().empty() &&
      (shards.global_step_elsewhere() || shards.others().empty())) {
    return absl::InvalidArgumentError(
        "A SyncApply needs at least one gradient");
  }
  // Empty on a shard without the global step: its steps increment nothing.
  const std::string global_step = shards.global_step_elsewhere()
                                      ? std::string()
                                      : GlobalStepName(request.global_step());
  const std::vector<int32_t> others(shards.others().begin(),
                                    shards.others().end());
  std::vector<Gradient> grads;
  for (const v1::Update& update : request.updates()) {
    VS_ASSIGN_OR_RETURN(grads.emplace_back(), DecodeGradient(update, *table_));
  }

  std::shared_ptr<Accumulator> acc;
  {
    absl::MutexLock l(&mu_);
    std::shared_ptr<Accumulator>& slot = accumulators_[request.accumulator()];
    if (slot == nullptr) slot = std::make_shared<Accumulator>();
    acc = slot;
  }
  absl::MutexLock l(&acc->mu);
  const bool identified = !request.id().client_id().empty();
  if (identified) {
    auto it = acc->last.find(request.id().client_id());
    if (it != acc->last.end() && it->second.first == request.id().sequence()) {
      v1::SyncApplyResponse response = it->second.second;
      response.set_duplicate(true);
      return response;
    }
  }
  int64_t current;
  if (global_step.empty()) {
    // A newer step than the one gathered here: the global step's shard
    // moved on without this record (the first contribution since start, or
    // the step gathered here never completed).
    if (acc->step < request.step()) acc->Reset(request.step());
    current = acc->step;
  } else {
    VS_ASSIGN_OR_RETURN(current, GlobalStep(global_step));
    // The global step moved without this accumulator (set by hand, or the
    // server restarted): gather for its new value.
    if (acc->step != current) acc->Reset(current);
  }

  v1::SyncApplyResponse response;
  int64_t after = current;
  if (request.step() < current) {
    ++acc->stale_dropped;
    counters_.stale_dropped.Add();
    response.set_outcome(v1::SyncApplyResponse::STALE);
  } else {
    if (acc->accumulated == 0) {
      acc->replicas_to_aggregate = request.replicas_to_aggregate();
      acc->others = others;
    } else {
      VS_RETURN_IF_ERROR(
          acc->Matches(grads, request.replicas_to_aggregate(), others));
    }
    // Beyond replicas_to_aggregate, a contribution only reports shards.
    if (acc->accumulated < acc->replicas_to_aggregate) acc->Add(grads);
    acc->applied.insert(shards.applied().begin(), shards.applied().end());
    response.set_outcome(v1::SyncApplyResponse::ACCUMULATED);
    if (acc->Complete(!global_step.empty())) {
      v1::BatchUpdateRequest mean = acc->MeanUpdate(global_step);
      // A step applied before a restart is not applied again (the table
      // answers it as a duplicate).
      if (global_step.empty()) {
        *mean.mutable_id() = StepId(request.accumulator(), current);
      }
      absl::StatusOr<v1::BatchUpdateResponse> applied =
          table_->BatchUpdate(std::move(mean));
      acc->Reset(current);
      VS_RETURN_IF_ERROR(applied.status());
      after = current + 1;
      acc->step = after;
      response.set_outcome(v1::SyncApplyResponse::APPLIED);
      if (!global_step.empty()) Notify(global_step, after);
    }
  }
  response.set_global_step(after);
  response.set_accumulated(acc->accumulated);
  response.set_stale_dropped(acc->stale_dropped);
  if (identified) {
    acc->last[request.id().client_id()] = {request.id().sequence(), response};
  }
  return response;
}

int64_t SyncReplicas::Wait(const std::string& global_step, int64_t step,
                           WaitCallback done) {
  absl::StatusOr<int64_t> now;
  {
    absl::MutexLock l(&waiters_mu_);
    if (shut_down_) {
      now = absl::UnavailableError("The server is shutting down");
    } else {
      // Read under waiters_mu_: a step applied after this read notifies
      // only after this waiter is registered.
      now = GlobalStep(GlobalStepName(global_step));
      if (now.ok() && *now < step) {
        const int64_t id = next_waiter_++;
        counters_.waits.Add();
        waiters_.emplace(
            id, Waiter{GlobalStepName(global_step), step, std::move(done)});
        return id;
      }
    }
  }
  done(now);
  return 0;
}

int64_t SyncReplicas::Waiting() {
  absl::MutexLock l(&waiters_mu_);
  return static_cast<int64_t>(waiters_.size());
}

bool SyncReplicas::Cancel(int64_t id) {
  absl::MutexLock l(&waiters_mu_);
  return waiters_.erase(id) > 0;
}

void SyncReplicas::Notify(const std::string& global_step, int64_t value) {
  std::vector<WaitCallback> ready;
  {
    absl::MutexLock l(&waiters_mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.global_step == global_step && it->second.step <= value) {
        ready.push_back(std::move(it->second.done));
        waiters_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (WaitCallback& done : ready) done(value);
}

void SyncReplicas::Shutdown() {
  absl::flat_hash_map<int64_t, Waiter> waiters;
  {
    absl::MutexLock l(&waiters_mu_);
    shut_down_ = true;
    waiters.swap(waiters_);
  }
  for (auto& [id, waiter] : waiters) {
    waiter.done(absl::UnavailableError("The server is shutting down"));
  }
}

}  // namespace varscope::server
