// The embedding-variable calls of the VariableService: names and options
// from the VariableTable (embedding variables share its namespace), rows
// from the EmbeddingStore, optimizer steps from optimizers.h.
#ifndef VARSCOPE_SERVER_EMBEDDING_EMBEDDING_CALLS_H_
#define VARSCOPE_SERVER_EMBEDDING_EMBEDDING_CALLS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/embedding/embedding_table.h"
#include "server/table/variable_table.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::server {

// Thread-safe. `table` and `store` must outlive it. Every call naming a
// variable fails with NOT_FOUND (with similar names) if it is missing and
// INVALID_ARGUMENT "Variable NAME is not an embedding variable" if it is a
// dense one; keys must be a 1-D tensor of the variable's key dtype and rows
// float32 [len(keys), embedding_dim] (INVALID_ARGUMENT otherwise, nothing
// changed).
class EmbeddingCalls {
 public:
  // Exactly-once ids are the table's (VariableTable::applied): a client
  // numbers all its updates with one sequence.
  EmbeddingCalls(VariableTable* table, embedding::EmbeddingStore* store)
      : table_(table), store_(store) {}

  // get_embedding_variable: GetVariable's modes and errors, plus
  // INVALID_ARGUMENT for a non-positive embedding_dim, a key dtype other
  // than int64/int32, a value dtype other than float32, a negative
  // filter_freq or steps_to_live, a dense variable of that name ("Variable
  // NAME is a dense variable; an embedding variable cannot share its
  // name."), or reuse with another embedding_dim.
  absl::StatusOr<v1::GetVariableResponse> GetEmbeddingVariable(
      const v1::GetEmbeddingVariableRequest& request);
  absl::StatusOr<v1::EmbeddingLookupResponse> Lookup(
      const v1::EmbeddingLookupRequest& request);
  // Also INVALID_ARGUMENT for a bad optimizer, for gradients holding a
  // NaN or an infinity and for a bad intent. Exactly once with an id, and
  // its intent stored with it (as BatchUpdate). Takes the keys and the
  // gradients out of `request`.
  absl::StatusOr<v1::EmbeddingApplyResponse> Apply(
      v1::EmbeddingApplyRequest& request);
  absl::StatusOr<v1::EmbeddingStats> Stats(
      const v1::EmbeddingStatsRequest& request);
  // INVALID_ARGUMENT for a negative page size.
  absl::StatusOr<v1::EmbeddingExportResponse> Export(
      const v1::EmbeddingExportRequest& request);
  // Exactly once with an id.
  absl::StatusOr<v1::EmbeddingImportResponse> Import(
      const v1::EmbeddingImportRequest& request);

 private:
  // The table of the embedding variable `name`.
  absl::StatusOr<std::shared_ptr<embedding::EmbeddingTable>> Find(
      const std::string& name);
  // Adds the exactly-once record of a result to a store write (nullptr
  // without an id).
  using Recorder =
      std::function<void(const v1::BatchUpdateResponse&, StorageBatch&)>;
  // Runs `update` exactly once under `id` (when set): a repeat returns the
  // first result (as a batch's, counts in its versions). `update` writes
  // its result's record with its change.
  absl::StatusOr<v1::BatchUpdateResponse> ExactlyOnce(
      const v1::UpdateId& id,
      const std::function<
          absl::StatusOr<v1::BatchUpdateResponse>(const Recorder&)>& update);

  VariableTable* const table_;
  embedding::EmbeddingStore* const store_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_EMBEDDING_EMBEDDING_CALLS_H_
