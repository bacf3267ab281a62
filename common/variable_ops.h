// Results and options of variable reads and updates, shared by the server's
// table and the clients.
#ifndef VARSCOPE_COMMON_VARIABLE_OPS_H_
#define VARSCOPE_COMMON_VARIABLE_OPS_H_

#include <cstdint>
#include <optional>

#include "common/tensor.h"

namespace varscope {

struct ReadResult {
  Tensor value;
  int64_t version = 0;
};

struct UpdateOptions {
  // Apply only if the variable is at this version; else ABORTED.
  // Default: unset (no check).
  std::optional<int64_t> expected_version;
  // Return the value after the update. Default: false.
  bool return_value = false;
};

struct UpdateResult {
  int64_t version = 0;
  std::optional<Tensor> value;  // set when UpdateOptions::return_value
};

}  // namespace varscope

#endif  // VARSCOPE_COMMON_VARIABLE_OPS_H_
