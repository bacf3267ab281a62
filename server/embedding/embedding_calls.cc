#include "server/embedding/embedding_calls.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/dtype.h"
#include "common/initializers.h"
#include "common/shape.h"
#include "common/status.h"
#include "common/tensor.h"
#include "server/table/optimizers.h"

namespace varscope::server {
namespace {

constexpr int32_t kDefaultExportPage = 65536;

// The keys of a request as int64, checked against the variable.
absl::StatusOr<std::vector<int64_t>> Keys(const std::string& name,
                                          const v1::EmbeddingOptions& options,
                                          v1::Tensor* proto) {
  if (proto->dtype() != options.key_dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Embedding variable ", name, " has ", DTypeName(options.key_dtype()),
        " keys, not ", DTypeName(proto->dtype())));
  }
  VS_ASSIGN_OR_RETURN(Tensor keys, TensorFromProto(proto));
  if (keys.dims().size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "The keys for embedding variable ", name,
        " must be a vector, not of shape ", ShapeString(keys.dims())));
  }
  std::vector<int64_t> out(static_cast<size_t>(keys.dims()[0]));
  if (keys.dtype() == v1::DT_INT64) {
    memcpy(out.data(), keys.bytes().data(), keys.bytes().size());
  } else {
    std::vector<int32_t> narrow(out.size());
    memcpy(narrow.data(), keys.bytes().data(), keys.bytes().size());
    std::copy(narrow.begin(), narrow.end(), out.begin());
  }
  return out;
}

// Rows [n, dim] of float32 as a Tensor, checked.
absl::StatusOr<Tensor> Rows(const std::string& name, absl::string_view what,
                            int64_t n, int64_t dim, v1::Tensor* proto) {
  const std::vector<int64_t> want = {n, dim};
  std::vector<int64_t> got(proto->shape().dims().begin(),
                           proto->shape().dims().end());
  if (proto->dtype() != v1::DT_FLOAT || got != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "The ", what, " for embedding variable ", name,
        " must be float32 of shape ", ShapeString(want), ", not ",
        DTypeName(proto->dtype()), " of shape ", ShapeString(got)));
  }
  VS_ASSIGN_OR_RETURN(Tensor rows, TensorFromProto(proto));
  const auto* values = reinterpret_cast<const float*>(rows.bytes().data());
  for (int64_t i = 0; i < n * dim; ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("The ", what, " for embedding variable ", name,
                       " hold a NaN or an infinity (row ", i / dim,
                       "); nothing was applied"));
    }
  }
  return rows;
}

// An int64 vector of `n` or empty (absent).
absl::StatusOr<std::vector<int64_t>> Column(const std::string& name,
                                            absl::string_view what, int64_t n,
                                            v1::Tensor* proto) {
  if (proto->dtype() == v1::DT_INVALID) return std::vector<int64_t>();
  if (proto->dtype() != v1::DT_INT64 || proto->shape().dims_size() != 1 ||
      proto->shape().dims(0) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("The ", what, " for embedding variable ", name,
                     " must be int64 of shape (", n, ")"));
  }
  VS_ASSIGN_OR_RETURN(Tensor t, TensorFromProto(proto));
  std::vector<int64_t> out(static_cast<size_t>(n));
  memcpy(out.data(), t.bytes().data(), t.bytes().size());
  return out;
}

template <typename T>
v1::Tensor VectorProto(DType dtype, std::vector<int64_t> dims,
                       const std::vector<T>& values) {
  v1::Tensor proto;
  TensorToProto(Tensor::FromVector<T>(dtype, std::move(dims), values), &proto);
  return proto;
}

// The counts of an Apply as a batch's result (see ExactlyOnce).
v1::BatchUpdateResponse Counts(std::initializer_list<int64_t> counts) {
  v1::BatchUpdateResponse response;
  for (int64_t c : counts) response.add_versions(c);
  return response;
}

}  // namespace

absl::StatusOr<v1::GetVariableResponse> EmbeddingCalls::GetEmbeddingVariable(
    const v1::GetEmbeddingVariableRequest& request) {
  const std::string& name = request.name();
  const DType key_dtype = request.key_dtype() == v1::DT_INVALID
                              ? v1::DT_INT64
                              : request.key_dtype();
  const DType value_dtype = request.value_dtype() == v1::DT_INVALID
                                ? v1::DT_FLOAT
                                : request.value_dtype();
  if (request.embedding_dim() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("The embedding_dim of embedding variable ", name,
                     " must be positive, not ", request.embedding_dim()));
  }
  if (key_dtype != v1::DT_INT64 && key_dtype != v1::DT_INT32) {
    return absl::InvalidArgumentError(
        absl::StrCat("The keys of embedding variable ", name,
                     " must be int64 or int32, not ", DTypeName(key_dtype)));
  }
  if (value_dtype != v1::DT_FLOAT) {
    return absl::InvalidArgumentError(
        absl::StrCat("The values of embedding variable ", name,
                     " must be float32, not ", DTypeName(value_dtype)));
  }
  if (request.filter_freq() < 0 || request.steps_to_live() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("The filter_freq and steps_to_live of embedding variable ",
                     name, " must not be negative"));
  }
  v1::GetVariableRequest get;
  get.set_name(name);
  get.set_mode(request.mode());
  get.mutable_shape()->add_dims(0);
  get.mutable_shape()->add_dims(request.embedding_dim());
  get.set_dtype(v1::DT_FLOAT);
  if (request.has_trainable()) get.set_trainable(request.trainable());
  v1::Initializer* init = get.mutable_initializer();
  if (request.has_initializer() &&
      request.initializer().kind() != v1::Initializer::KIND_DEFAULT) {
    *init = request.initializer();
  } else {
    // As tf.feature_column.embedding_column's default.
    init->set_kind(v1::Initializer::TRUNCATED_NORMAL);
    init->set_stddev(1.0 /
                     std::sqrt(static_cast<double>(request.embedding_dim())));
    if (request.initializer().has_seed()) {
      init->set_seed(request.initializer().seed());
    }
  }
  // Each row is the initializer's value for one row.
  const std::vector<int64_t> row = {1, request.embedding_dim()};
  VS_RETURN_IF_ERROR(ValidateInitializer(*init, v1::DT_FLOAT, row));
  v1::EmbeddingOptions* options = get.mutable_embedding();
  options->set_embedding_dim(request.embedding_dim());
  options->set_key_dtype(key_dtype);
  options->set_filter_freq(request.filter_freq());
  options->set_steps_to_live(request.steps_to_live());
  // Random, so that a variable deleted and created again under its name
  // never finds the old rows.
  options->set_table_id(absl::Uniform<uint64_t>(absl::BitGen()));
  VS_ASSIGN_OR_RETURN(v1::GetVariableResponse response,
                      table_->GetVariable(get));
  VS_RETURN_IF_ERROR(store_->Get(response.variable()).status());
  return response;
}

absl::StatusOr<std::shared_ptr<embedding::EmbeddingTable>> EmbeddingCalls::Find(
    const std::string& name) {
  VS_ASSIGN_OR_RETURN(const v1::VariableInfo info, table_->Stat(name));
  if (!info.has_embedding()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Variable ", name, " is not an embedding variable"));
  }
  return store_->Get(info);
}

absl::StatusOr<v1::EmbeddingLookupResponse> EmbeddingCalls::Lookup(
    const v1::EmbeddingLookupRequest& request) {
  VS_ASSIGN_OR_RETURN(std::shared_ptr<embedding::EmbeddingTable> table,
                      Find(request.name()));
  v1::Tensor keys_proto = request.keys();
  VS_ASSIGN_OR_RETURN(const std::vector<int64_t> keys,
                      Keys(request.name(), table->options(), &keys_proto));
  const int64_t n = static_cast<int64_t>(keys.size());
  Tensor values(v1::DT_FLOAT, {n, table->dim()});
  VS_RETURN_IF_ERROR(table->Lookup(
      keys,
      request.has_global_step() ? std::optional<int64_t>(request.global_step())
                                : std::nullopt,
      request.read_only(),
      reinterpret_cast<float*>(const_cast<char*>(values.bytes().data()))));
  v1::EmbeddingLookupResponse response;
  TensorToProto(std::move(values), response.mutable_values());
  return response;
}

absl::StatusOr<v1::BatchUpdateResponse> EmbeddingCalls::ExactlyOnce(
    const v1::UpdateId& id,
    const std::function<
        absl::StatusOr<v1::BatchUpdateResponse>(const Recorder&)>& update) {
  if (id.client_id().empty() && id.sequence() == 0) return update(nullptr);
  AppliedUpdates& applied = table_->applied();
  VS_ASSIGN_OR_RETURN(std::optional<v1::BatchUpdateResponse> done,
                      applied.Begin(id));
  if (done.has_value()) {
    done->set_duplicate(true);
    return *done;
  }
  // The recorder by value: in the interval mode it runs after this call
  // returned.
  absl::StatusOr<v1::BatchUpdateResponse> result =
      update([records = &applied, id](const v1::BatchUpdateResponse& result,
                                      StorageBatch& batch) {
        const AppliedUpdates::Record record = records->ToRecord(id, result);
        batch.PutApplied(id.client_id(), id.sequence(), record.result);
        for (int64_t seq : record.forget) {
          batch.DeleteApplied(id.client_id(), seq);
        }
      });
  applied.End(id, result.ok() ? &*result : nullptr);
  return result;
}

absl::StatusOr<v1::EmbeddingApplyResponse> EmbeddingCalls::Apply(
    v1::EmbeddingApplyRequest& request) {
  const std::string& name = request.name();
  VS_RETURN_IF_ERROR(Intents::Check(request));
  VS_ASSIGN_OR_RETURN(std::shared_ptr<embedding::EmbeddingTable> table,
                      Find(name));
  VS_ASSIGN_OR_RETURN(const std::vector<int64_t> keys,
                      Keys(name, table->options(), request.mutable_keys()));
  VS_ASSIGN_OR_RETURN(const Tensor gradients,
                      Rows(name, "gradients", static_cast<int64_t>(keys.size()),
                           table->dim(), request.mutable_gradients()));
  VS_ASSIGN_OR_RETURN(OptimizerStep optimizer,
                      OptimizerStep::Resolve(request.optimizer()));
  VS_RETURN_IF_ERROR(optimizer.ReadInputs(
      [&](const std::string& input) -> absl::StatusOr<double> {
        return absl::InvalidArgumentError(absl::StrCat(
            "EmbeddingApply of ", name, " takes the optimizer's input ", input,
            " by value (ScalarInput.value), not by variable"));
      }));
  std::vector<embedding::RowSlot> slots;
  for (const SlotSpec& slot : optimizer.slots()) {
    slots.push_back({slot.suffix, static_cast<float>(slot.initial)});
  }
  const std::optional<int64_t> step =
      request.has_global_step() ? std::optional<int64_t>(request.global_step())
                                : std::nullopt;
  std::vector<char*> raw;  // reused row after row
  const auto step_rows = [&](int64_t n, float* var,
                             absl::Span<float* const> slot_data,
                             const float* grad) {
    raw.resize(slot_data.size());
    for (size_t s = 0; s < raw.size(); ++s) {
      raw[s] = reinterpret_cast<char*>(slot_data[s]);
    }
    optimizer.ApplyElements(v1::DT_FLOAT, n, reinterpret_cast<char*>(var), raw,
                            reinterpret_cast<const char*>(grad));
  };
  // The intent goes with the exactly-once record, in the same store write.
  const Intents::Change intents = table_->intents().Prepare(request);
  VS_ASSIGN_OR_RETURN(
      const v1::BatchUpdateResponse result,
      ExactlyOnce(
          request.id(),
          [&](const Recorder& record)
              -> absl::StatusOr<v1::BatchUpdateResponse> {
            using Result = embedding::EmbeddingTable::ApplyResult;
            VS_ASSIGN_OR_RETURN(
                const Result applied,
                table->Apply(
                    keys,
                    reinterpret_cast<const float*>(gradients.bytes().data()),
                    slots, step_rows, step,
                    [record, intents](const Result& r, StorageBatch& batch) {
                      if (record) {
                        record(Counts({r.applied, r.filtered}), batch);
                        intents.Write(batch);
                      }
                    }));
            return Counts({applied.applied, applied.filtered});
          }));
  if (!result.duplicate()) table_->intents().Commit(intents);
  v1::EmbeddingApplyResponse response;
  response.set_applied(result.versions_size() > 0 ? result.versions(0) : 0);
  response.set_filtered(result.versions_size() > 1 ? result.versions(1) : 0);
  response.set_duplicate(result.duplicate());
  return response;
}

absl::StatusOr<v1::EmbeddingStats> EmbeddingCalls::Stats(
    const v1::EmbeddingStatsRequest& request) {
  VS_ASSIGN_OR_RETURN(std::shared_ptr<embedding::EmbeddingTable> table,
                      Find(request.name()));
  return table->Stats(std::clamp(request.hottest(), 0, 1000));
}

absl::StatusOr<v1::EmbeddingExportResponse> EmbeddingCalls::Export(
    const v1::EmbeddingExportRequest& request) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Negative page size ", request.page_size()));
  }
  VS_ASSIGN_OR_RETURN(std::shared_ptr<embedding::EmbeddingTable> table,
                      Find(request.name()));
  VS_ASSIGN_OR_RETURN(
      embedding::ExportedRows rows,
      table->Export(
          request.has_start_after()
              ? std::optional<int64_t>(request.start_after())
              : std::nullopt,
          request.page_size() == 0 ? kDefaultExportPage : request.page_size(),
          request.with_slots()));
  const int64_t n = static_cast<int64_t>(rows.keys.size());
  v1::EmbeddingExportResponse response;
  *response.mutable_keys() = VectorProto<int64_t>(v1::DT_INT64, {n}, rows.keys);
  *response.mutable_values() =
      VectorProto<float>(v1::DT_FLOAT, {n, table->dim()}, rows.values);
  *response.mutable_frequencies() =
      VectorProto<int64_t>(v1::DT_INT64, {n}, rows.frequencies);
  *response.mutable_last_steps() =
      VectorProto<int64_t>(v1::DT_INT64, {n}, rows.last_steps);
  for (size_t s = 0; s < rows.slots.slots.size(); ++s) {
    v1::EmbeddingSlotRows* slot = response.add_slots();
    slot->set_name(rows.slots.slots[s].name);
    slot->set_initial(rows.slots.slots[s].initial);
    *slot->mutable_values() = VectorProto<float>(
        v1::DT_FLOAT, {n, table->dim()}, rows.slots.values[s]);
  }
  response.set_done(rows.done);
  return response;
}

absl::StatusOr<v1::EmbeddingImportResponse> EmbeddingCalls::Import(
    const v1::EmbeddingImportRequest& original) {
  v1::EmbeddingImportRequest request = original;
  const std::string& name = request.name();
  VS_ASSIGN_OR_RETURN(std::shared_ptr<embedding::EmbeddingTable> table,
                      Find(name));
  VS_ASSIGN_OR_RETURN(const std::vector<int64_t> keys,
                      Keys(name, table->options(), request.mutable_keys()));
  const int64_t n = static_cast<int64_t>(keys.size());
  VS_ASSIGN_OR_RETURN(const Tensor values, Rows(name, "values", n, table->dim(),
                                                request.mutable_values()));
  VS_ASSIGN_OR_RETURN(
      const std::vector<int64_t> frequencies,
      Column(name, "frequencies", n, request.mutable_frequencies()));
  VS_ASSIGN_OR_RETURN(
      const std::vector<int64_t> last_steps,
      Column(name, "last steps", n, request.mutable_last_steps()));
  embedding::SlotValues slots;
  for (v1::EmbeddingSlotRows& slot : *request.mutable_slots()) {
    if (slot.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "A slot imported into embedding variable ", name, " has no name"));
    }
    VS_ASSIGN_OR_RETURN(const Tensor rows,
                        Rows(name, absl::StrCat("slot ", slot.name()), n,
                             table->dim(), slot.mutable_values()));
    slots.slots.push_back({slot.name(), slot.initial()});
    const auto* floats = reinterpret_cast<const float*>(rows.bytes().data());
    slots.values.emplace_back(floats, floats + n * table->dim());
  }
  std::vector<int64_t> remove;
  if (request.remove_keys().dtype() != v1::DT_INVALID) {
    VS_ASSIGN_OR_RETURN(
        remove, Keys(name, table->options(), request.mutable_remove_keys()));
  }
  VS_ASSIGN_OR_RETURN(
      const v1::BatchUpdateResponse result,
      ExactlyOnce(
          request.id(),
          [&](const Recorder& record)
              -> absl::StatusOr<v1::BatchUpdateResponse> {
            VS_ASSIGN_OR_RETURN(
                const int64_t removed,
                table->Import(
                    keys, reinterpret_cast<const float*>(values.bytes().data()),
                    frequencies, last_steps, slots, remove,
                    [&](int64_t removed, StorageBatch& batch) {
                      if (record) record(Counts({n, removed}), batch);
                    }));
            return Counts({n, removed});
          }));
  v1::EmbeddingImportResponse response;
  response.set_imported(result.versions_size() > 0 ? result.versions(0) : 0);
  response.set_removed(result.versions_size() > 1 ? result.versions(1) : 0);
  response.set_duplicate(result.duplicate());
  return response;
}

}  // namespace varscope::server
