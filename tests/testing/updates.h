// Building update requests in tests.
#ifndef VARSCOPE_TESTS_TESTING_UPDATES_H_
#define VARSCOPE_TESTS_TESTING_UPDATES_H_

#include <string>
#include <utility>

#include "common/tensor.h"
#include "varscope/v1/variable_service.pb.h"

namespace varscope::testing {

// An update of `name` that assigns `value`, or adds it when `add`.
inline v1::Update WholeUpdate(const std::string& name, Tensor value, bool add) {
  v1::Update update;
  update.set_name(name);
  TensorToProto(std::move(value),
                add ? update.mutable_assign_add() : update.mutable_assign());
  return update;
}

}  // namespace varscope::testing

#endif  // VARSCOPE_TESTS_TESTING_UPDATES_H_
