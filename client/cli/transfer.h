// Moving variables between servers through NumPy files: export, import.
//
// An export is a .npz (numpy.load reads it: one array per variable, keyed
// by its full name; a partitioned variable is one whole array) plus a JSON
// metadata sidecar:
//   {"format": "varscope-npz", "format_version": 1, "scope": "model",
//    "variables": {"model/w": {"dtype": "bfloat16", "npz_dtype": "float32",
//      "shape": [4, 2], "version": 3, "trainable": true,
//      "initializer": {...}, "created": ..., "updated": ...,
//      "slice": {...},                     // a part exported on its own
//      "partitions": [2, 1], "parts": [...]  // a partitioned variable
//    }, ...}}
// numpy has no bfloat16: such variables are stored as float32 arrays (exact)
// and "npz_dtype" says so; import converts them back exactly.
#ifndef VARSCOPE_CLIENT_CLI_TRANSFER_H_
#define VARSCOPE_CLIENT_CLI_TRANSFER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "client/cli/command.h"

namespace varscope::cli {

struct ExportOptions {
  // The scope (or variable) to export; "" is everything. Default: "".
  std::string scope;
  // The .npz to write.
  std::string path;
  // The sidecar to write. Default ("" here): `path` + ".json".
  std::string metadata_path;
};

// Writes every variable under `scope` to `path` and its metadata to the
// sidecar, reading one variable at a time (the export is not a snapshot of
// one instant: each variable is read atomically on its own). Both files are
// written under a ".partial" suffix and renamed at the end, so a failed
// export leaves neither. Draws progress when context.progress. NOT_FOUND if
// nothing is named `scope` or under it; server and file errors otherwise.
absl::Status Export(const CommandContext& context,
                    const ExportOptions& options);

struct ImportOptions {
  // A .npz written by Export (or by numpy.savez / savez_compressed).
  std::string path;
  // The sidecar. Default (""): `path` + ".json" when that file exists;
  // without one, each array is imported as it is (dtype and shape from the
  // array, zeros initializer, trainable).
  std::string metadata_path;
  // Puts the variables under this scope, named relative to the exported
  // scope: model/dense/w exported from "model" becomes INTO/dense/w.
  // Default: the names as exported.
  std::optional<std::string> into;
  // Replace variables that exist (their dtype, shape and partitioning must
  // match). Default: false: fail if any exists, before writing anything.
  bool overwrite = false;
};

// Creates (or, with overwrite, updates) one variable per array with its
// recorded dtype, shape, initializer, trainable flag and partitioning, and
// assigns the array to it. Versions and times restart on the target server.
// ALREADY_EXISTS (nothing written) if not overwriting and a target exists;
// INVALID_ARGUMENT for a bad file, bad metadata, or an array that does not
// fit its metadata; server errors (e.g. a shape mismatch when overwriting)
// stop the import after the variables already done.
absl::Status Import(const CommandContext& context,
                    const ImportOptions& options);

// An embedding variable's rows go to a .npz of their own: keys.npy (int64
// [n]), values.npy (float32 [n, embedding_dim]), frequencies.npy and
// last_steps.npy (int64 [n]); numpy.load reads it.
struct EmbeddingTransferOptions {
  std::string name;  // the embedding variable
  std::string path;  // the .npz
};

// Writes every stored row of the embedding variable to `path` (under a
// ".partial" suffix renamed at the end: a failed export leaves nothing).
// NOT_FOUND if the variable is missing, INVALID_ARGUMENT if it is not an
// embedding variable; server and file errors otherwise.
absl::Status EmbeddingExport(const CommandContext& context,
                             const EmbeddingTransferOptions& options);

// Stores the rows of a .npz (keys.npy and values.npy required;
// frequencies.npy and last_steps.npy when present) into the embedding
// variable, replacing rows of the same keys, in one atomic call.
// INVALID_ARGUMENT naming the member for a missing or bad array, else the
// server's error (nothing stored).
absl::Status EmbeddingImport(const CommandContext& context,
                             const EmbeddingTransferOptions& options);

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_TRANSFER_H_
