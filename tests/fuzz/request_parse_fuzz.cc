// Parses the input as a request the variable service takes as raw bytes (as
// the service does, with ParseRaw), often a generated request with a few
// bytes changed, and passes what parses to the table call serving it (see
// TableHarness for the checks), over a table holding a few variables. Also
// converts arbitrary v1::Tensor messages with TensorFromProto.
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/shape.h"
#include "common/tensor.h"
#include "google/protobuf/stubs/logging.h"
#include "server/service/raw_calls.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/fuzz_requests.h"
#include "tests/fuzz/table_harness.h"

namespace varscope::fuzz {
namespace {

// Up to four byte edits: overwrite, insert, erase, truncate.
std::string Mutate(FuzzInput& in, std::string bytes) {
  const int edits = in.InRange(0, 4);
  for (int i = 0; i < edits; ++i) {
    const size_t at = in.InRange<size_t>(0, bytes.size());
    switch (in.InRange(0, 3)) {
      case 0:
        if (at < bytes.size()) bytes[at] = in.Integral<char>();
        break;
      case 1:
        bytes.insert(at, 1, in.Integral<char>());
        break;
      case 2:
        if (at < bytes.size()) bytes.erase(at, 1);
        break;
      default:
        bytes.resize(at);
        break;
    }
  }
  return bytes;
}

// The message's wire bytes: generated and mutated when `structured`, else
// the rest of the input; in two slices, as they may arrive.
template <typename Generate>
grpc::ByteBuffer WireBytes(FuzzInput& in, bool structured, Generate generate) {
  const uint16_t split = in.Integral<uint16_t>();
  const std::string bytes =
      structured ? Mutate(in, generate().SerializeAsString()) : in.Rest();
  const size_t at = split % (bytes.size() + 1);
  grpc::Slice slices[] = {grpc::Slice(bytes.substr(0, at)),
                          grpc::Slice(bytes.substr(at))};
  return grpc::ByteBuffer(slices, 2);
}

// Parses `buffer` as a Message and calls `apply` with it; a parse error must
// be INVALID_ARGUMENT.
template <typename Message, typename Apply>
void ParseAndApply(const grpc::ByteBuffer& buffer, Apply apply) {
  Message message;
  const absl::Status status = server::ParseRaw(buffer, &message);
  if (!status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument) {
      FuzzFail(absl::StrCat("ParseRaw returned ", status.ToString()));
    }
    return;
  }
  apply(message);
}

// An Assign or AssignAdd request as the one update of a batch, as the
// service runs it.
template <typename Request>
v1::BatchUpdateRequest OneUpdate(Request& request, v1::Tensor* value,
                                 v1::Tensor* (v1::Update::*op)()) {
  v1::BatchUpdateRequest batch;
  v1::Update* update = batch.add_updates();
  update->set_name(request.name());
  if (request.has_expected_version()) {
    update->set_expected_version(request.expected_version());
  }
  (update->*op)()->Swap(value);
  if (request.has_id()) *batch.mutable_id() = request.id();
  batch.set_return_values(request.return_value());
  return batch;
}

template <typename Request>
Request FuzzOneUpdate(FuzzInput& in, absl::Span<const KnownVariable> known,
                      v1::Tensor* (Request::*value)()) {
  Request request;
  const v1::BatchUpdateRequest batch = FuzzBatchUpdate(in, known);
  if (batch.updates_size() > 0) {
    const v1::Update& update = batch.updates(0);
    request.set_name(update.name());
    if (update.has_expected_version()) {
      request.set_expected_version(update.expected_version());
    }
    if (update.has_assign()) *(request.*value)() = update.assign();
  }
  if (batch.has_id()) *request.mutable_id() = batch.id();
  request.set_return_value(batch.return_values());
  return request;
}

void CheckTensorFromProto(v1::Tensor proto) {
  const v1::Tensor original = proto;
  absl::StatusOr<Tensor> tensor = TensorFromProto(&proto);
  if (!tensor.ok()) {
    if (tensor.status().code() != absl::StatusCode::kInvalidArgument) {
      FuzzFail(absl::StrCat("TensorFromProto returned ",
                            tensor.status().ToString()));
    }
    return;
  }
  const std::vector<int64_t> dims(original.shape().dims().begin(),
                                  original.shape().dims().end());
  const absl::StatusOr<int64_t> elements = NumElements(dims);
  if (tensor->dtype() != original.dtype() ||
      !IsSupportedDType(tensor->dtype()) || tensor->dims() != dims ||
      !elements.ok() || tensor->bytes() != original.content() ||
      static_cast<int64_t>(tensor->bytes().size()) !=
          *elements * static_cast<int64_t>(DTypeSize(tensor->dtype())) ||
      (tensor->dtype() == v1::DT_BOOL &&
       tensor->bytes().find_first_not_of(std::string("\0\1", 2)) !=
           std::string::npos)) {
    FuzzFail(absl::StrCat("TensorFromProto accepted ",
                          original.ShortDebugString().substr(0, 300)));
  }
}

// The variables every input starts with: plain, scoped, scalar and
// partitioned.
void AddVariables(TableHarness& table) {
  const struct {
    const char* name;
    DType dtype;
    std::vector<int64_t> dims;
    int64_t parts;
  } variables[] = {{"a", v1::DT_FLOAT, {4, 2}, 0},
                   {"s/b", v1::DT_INT64, {3}, 0},
                   {"s/c", v1::DT_HALF, {}, 0},
                   {"p", v1::DT_DOUBLE, {5, 2}, 2}};
  for (const auto& v : variables) {
    v1::GetVariableRequest request;
    request.set_name(v.name);
    request.set_mode(v1::CREATE);
    request.set_dtype(v.dtype);
    request.mutable_shape()->mutable_dims()->Assign(v.dims.begin(),
                                                    v.dims.end());
    request.mutable_initializer()->set_kind(v1::Initializer::ONES);
    if (v.parts > 0) {
      request.mutable_partitioner()->mutable_fixed_size()->set_num_shards(
          v.parts);
    }
    table.GetVariable(request);
  }
  if (table.known().size() != 5) FuzzFail("the starting variables are missing");
}

void RunInput(const uint8_t* data, size_t size) {
  // Protobuf logs every string field of invalid UTF-8 it parses or
  // serializes (parsing fails, as it should).
  google::protobuf::LogSilencer quiet;
  FuzzInput in(data, size);
  const int kind = in.InRange(0, 11);
  const bool structured = in.Bool();
  if (kind == 11) {
    ParseAndApply<v1::Tensor>(
        WireBytes(in, structured, [&] { return FuzzTensor(in, nullptr); }),
        [](v1::Tensor& proto) { CheckTensorFromProto(std::move(proto)); });
    return;
  }
  TableHarness table(/*interval=*/false);
  AddVariables(table);
  const auto& known = table.known();
  switch (kind) {
    case 0:
      ParseAndApply<v1::GetVariableRequest>(
          WireBytes(in, structured, [&] { return FuzzGetVariable(in, known); }),
          [&](auto& request) { table.GetVariable(request); });
      break;
    case 1:
      ParseAndApply<v1::BatchUpdateRequest>(
          WireBytes(in, structured, [&] { return FuzzBatchUpdate(in, known); }),
          [&](auto& request) { table.BatchUpdate(request); });
      break;
    case 2:
      ParseAndApply<v1::AssignRequest>(
          WireBytes(in, structured,
                    [&] {
                      return FuzzOneUpdate(in, known,
                                           &v1::AssignRequest::mutable_value);
                    }),
          [&](auto& request) {
            table.BatchUpdate(OneUpdate(request, request.mutable_value(),
                                        &v1::Update::mutable_assign));
          });
      break;
    case 3:
      ParseAndApply<v1::AssignAddRequest>(
          WireBytes(in, structured,
                    [&] {
                      return FuzzOneUpdate(
                          in, known, &v1::AssignAddRequest::mutable_delta);
                    }),
          [&](auto& request) {
            table.BatchUpdate(OneUpdate(request, request.mutable_delta(),
                                        &v1::Update::mutable_assign_add));
          });
      break;
    case 4:
      ParseAndApply<v1::BatchReadRequest>(
          WireBytes(in, structured, [&] { return FuzzBatchRead(in, known); }),
          [&](auto& request) { table.BatchRead(request); });
      break;
    case 5:
      ParseAndApply<v1::GatherRequest>(
          WireBytes(in, structured, [&] { return FuzzGather(in, known); }),
          [&](auto& request) { table.Gather(request); });
      break;
    case 6:
      ParseAndApply<v1::ListVariablesRequest>(
          WireBytes(in, structured, [&] { return FuzzList(in, known); }),
          [&](auto& request) { table.List(request); });
      break;
    case 7:
      ParseAndApply<v1::ReadRequest>(
          WireBytes(in, structured,
                    [&] {
                      v1::ReadRequest request;
                      request.set_name(FuzzName(in, known));
                      return request;
                    }),
          [&](auto& request) {
            table.Read(request.name());
            table.Stat(request.name());
          });
      break;
    case 8:
      ParseAndApply<v1::DeleteRequest>(
          WireBytes(in, structured,
                    [&] {
                      v1::DeleteRequest request;
                      request.set_name(FuzzName(in, known));
                      request.set_recursive(in.Bool());
                      return request;
                    }),
          [&](auto& request) {
            table.Delete(request.name(), request.recursive());
          });
      break;
    default:
      ParseAndApply<v1::RenameRequest>(
          WireBytes(in, structured,
                    [&] {
                      v1::RenameRequest request;
                      request.set_old_name(FuzzName(in, known));
                      request.set_new_name(FuzzName(in, known));
                      return request;
                    }),
          [&](auto& request) {
            table.Rename(request.old_name(), request.new_name());
          });
      break;
  }
  table.Reopen();
}

}  // namespace
}  // namespace varscope::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  varscope::fuzz::RunInput(data, size);
  return 0;
}
