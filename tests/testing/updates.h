// Building requests in tests.
#ifndef VARSCOPE_TESTS_TESTING_UPDATES_H_
#define VARSCOPE_TESTS_TESTING_UPDATES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/tensor.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::testing {

// The first of the names PREFIX0, PREFIX1, ... that ShardOf places on shard
// `shard` of `count`.
inline std::string NameOnShard(int shard, int count,
                               const std::string& prefix) {
  for (int i = 0;; ++i) {
    std::string name = absl::StrCat(prefix, i);
    if (ShardOf(name, count) == shard) return name;
  }
}

// A CREATE of `name` with `dtype` and shape `dims`, initialized by
// `initializer` (KIND_DEFAULT: no initializer in the request, the server's
// default for the dtype).
inline v1::GetVariableRequest CreateRequest(
    const std::string& name, v1::DataType dtype, std::vector<int64_t> dims,
    v1::Initializer::Kind initializer = v1::Initializer::KIND_DEFAULT) {
  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::CREATE);
  request.set_dtype(dtype);
  request.mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
  if (initializer != v1::Initializer::KIND_DEFAULT) {
    request.mutable_initializer()->set_kind(initializer);
  }
  return request;
}

// An update of `name` that assigns `value`, or adds it when `add`.
inline v1::Update WholeUpdate(const std::string& name, Tensor value, bool add) {
  v1::Update update;
  update.set_name(name);
  TensorToProto(std::move(value),
                add ? update.mutable_assign_add() : update.mutable_assign());
  return update;
}

// A batch of the one update `update`.
inline v1::BatchUpdateRequest BatchOf(v1::Update update) {
  v1::BatchUpdateRequest request;
  *request.add_updates() = std::move(update);
  return request;
}

}  // namespace varscope::testing

#endif  // VARSCOPE_TESTS_TESTING_UPDATES_H_
