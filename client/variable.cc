#include "client/variable.h"

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/shape.h"
#include "common/status.h"

namespace varscope {
namespace {

// Copies one part of a whole tensor split along `axis` from `from` to `to`,
// one of which is laid out as the whole (`from_whole` says which): the part
// is rows [offset, offset + part_dims[axis]) of every outer index.
void CopyPart(const std::vector<int64_t>& whole_dims,
              const std::vector<int64_t>& part_dims, int64_t offset, int axis,
              size_t elem, const char* from, char* to, bool from_whole) {
  int64_t outer = 1, inner = static_cast<int64_t>(elem);
  for (int i = 0; i < axis; ++i) outer *= whole_dims[i];
  for (size_t i = axis + 1; i < whole_dims.size(); ++i) inner *= whole_dims[i];
  const int64_t part_block = part_dims[axis] * inner;
  const int64_t whole_block = whole_dims[axis] * inner;
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t w = o * whole_block + offset * inner;
    const int64_t p = o * part_block;
    if (from_whole) {
      memcpy(to + p, from + w, static_cast<size_t>(part_block));
    } else {
      memcpy(to + w, from + p, static_cast<size_t>(part_block));
    }
  }
}

// The partitioned axis of a slice (0 when nothing is split).
int SliceAxis(const v1::SliceInfo& slice) {
  for (int i = 0; i < slice.partitions_size(); ++i) {
    if (slice.partitions(i) > 1) return i;
  }
  return 0;
}

}  // namespace

Variable::Variable(std::shared_ptr<Client> client,
                   v1::GetVariableResponse response)
    : state_(std::make_shared<State>()) {
  state_->client = client;
  state_->info = std::move(*response.mutable_variable());
  state_->dims.assign(state_->info.shape().dims().begin(),
                      state_->info.shape().dims().end());
  state_->created = response.created();
  state_->version = state_->info.version();
  for (v1::VariableInfo& part : *response.mutable_parts()) {
    v1::GetVariableResponse part_response;
    *part_response.mutable_variable() = std::move(part);
    part_response.set_created(response.created());
    state_->parts.push_back(Variable(client, std::move(part_response)));
  }
}

std::vector<int64_t> Variable::partitions() const {
  if (!partitioned()) return {};
  const auto& p = state_->parts.front().info().slice().partitions();
  return {p.begin(), p.end()};
}

int64_t Variable::version() const {
  int64_t version = state_->version.load();
  for (const Variable& part : state_->parts) {
    version = std::max(version, part.version());
  }
  return version;
}

void Variable::SeeVersion(int64_t version) const {
  int64_t seen = state_->version.load();
  while (version > seen &&
         !state_->version.compare_exchange_weak(seen, version)) {
  }
}

absl::Status Variable::CheckTensor(const SharedTensor& t,
                                   absl::string_view op) const {
  if (t.dtype != dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Cannot ", op, " a tensor of dtype ", DTypeName(t.dtype),
        " to variable ", name(), " of dtype ", DTypeName(dtype())));
  }
  if (t.dims != shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Cannot ", op, " a tensor of shape ", ShapeString(t.dims),
        " to variable ", name(), " of shape ", ShapeString(shape())));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Variable::Read() const {
  if (!partitioned()) {
    VS_ASSIGN_OR_RETURN(ReadResult result, state_->client->Read(name()));
    SeeVersion(result.version);
    return std::move(result.value);
  }
  // The parts at once: on a cluster they are on several shards.
  const std::vector<Variable>& parts = state_->parts;
  std::vector<absl::StatusOr<Tensor>> values(parts.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < parts.size(); ++i) {
      threads.emplace_back([&, i] { values[i] = parts[i].Read(); });
    }
    values[0] = parts[0].Read();
    for (std::thread& thread : threads) thread.join();
  }
  Tensor whole(dtype(), shape());
  for (size_t i = 0; i < parts.size(); ++i) {
    const Variable& part = parts[i];
    if (!values[i].ok()) return values[i].status();
    const Tensor& value = *values[i];
    const v1::SliceInfo& slice = part.info().slice();
    const int axis = SliceAxis(slice);
    CopyPart(shape(), part.shape(), slice.var_offset(axis), axis,
             DTypeSize(dtype()), value.bytes().data(), whole.mutable_data(),
             /*from_whole=*/false);
  }
  return whole;
}

std::vector<Tensor> Variable::Split(const SharedTensor& whole) const {
  std::vector<Tensor> out;
  for (const Variable& part : state_->parts) {
    Tensor piece(dtype(), part.shape());
    const v1::SliceInfo& slice = part.info().slice();
    const int axis = SliceAxis(slice);
    CopyPart(shape(), part.shape(), slice.var_offset(axis), axis,
             DTypeSize(dtype()), whole.bytes.data(), piece.mutable_data(),
             /*from_whole=*/true);
    out.push_back(std::move(piece));
  }
  return out;
}

absl::StatusOr<UpdateResult> Variable::Update(SharedTensor tensor,
                                              const UpdateOptions& options,
                                              bool add) const {
  VS_RETURN_IF_ERROR(CheckTensor(tensor, add ? "add" : "assign"));
  if (!partitioned()) {
    VS_ASSIGN_OR_RETURN(
        UpdateResult result,
        add ? state_->client->AssignAdd(name(), std::move(tensor), options)
            : state_->client->Assign(name(), std::move(tensor), options));
    SeeVersion(result.version);
    return result;
  }
  if (options.expected_version.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "An expected version cannot be given for partitioned variable ", name(),
        "; give it to one part"));
  }
  std::vector<Tensor> pieces = Split(tensor);
  UpdateResult result;
  if (options.return_value) result.value = Tensor(dtype(), shape());
  for (size_t i = 0; i < pieces.size(); ++i) {
    const Variable& part = state_->parts[i];
    VS_ASSIGN_OR_RETURN(
        UpdateResult r,
        part.Update(SharedTensor::Of(std::move(pieces[i])),
                    {.return_value = options.return_value}, add));
    result.version = std::max(result.version, r.version);
    if (options.return_value) {
      const v1::SliceInfo& slice = part.info().slice();
      const int axis = SliceAxis(slice);
      CopyPart(shape(), part.shape(), slice.var_offset(axis), axis,
               DTypeSize(dtype()), r.value->bytes().data(),
               result.value->mutable_data(), /*from_whole=*/false);
    }
  }
  return result;
}

absl::StatusOr<UpdateResult> Variable::Assign(
    Tensor value, const UpdateOptions& options) const {
  return Update(SharedTensor::Of(std::move(value)), options, /*add=*/false);
}

absl::StatusOr<UpdateResult> Variable::AssignAdd(
    Tensor delta, const UpdateOptions& options) const {
  return Update(SharedTensor::Of(std::move(delta)), options, /*add=*/true);
}

absl::StatusOr<UpdateResult> Variable::Assign(
    SharedTensor value, const UpdateOptions& options) const {
  return Update(std::move(value), options, /*add=*/false);
}

absl::StatusOr<UpdateResult> Variable::AssignAdd(
    SharedTensor delta, const UpdateOptions& options) const {
  return Update(std::move(delta), options, /*add=*/true);
}

}  // namespace varscope
