#include "server/variable_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/shape.h"
#include "common/status.h"
#include "server/raw_calls.h"

namespace varscope::server {
namespace {

// Finishes the call with `status`.
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Parses `request` as a `Request` and answers with the bytes `handle`
// returns for it, or its error.
template <typename Request, typename Handle>
grpc::ServerUnaryReactor* ReplyRaw(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer& request,
                                   grpc::ByteBuffer* response, Handle handle) {
  Request parsed;
  absl::Status status = ParseRaw(request, &parsed);
  if (status.ok()) {
    absl::StatusOr<grpc::ByteBuffer> reply = handle(parsed);
    status = reply.status();
    if (reply.ok()) *response = *std::move(reply);
  }
  return Reply(context, status);
}

// A batch of one update from an Assign or AssignAdd request.
template <typename Request>
v1::BatchUpdateRequest OneUpdate(const Request& request, v1::Update* update) {
  v1::BatchUpdateRequest batch;
  update->set_name(request.name());
  if (request.has_expected_version()) {
    update->set_expected_version(request.expected_version());
  }
  *batch.add_updates() = std::move(*update);
  if (request.has_id()) *batch.mutable_id() = request.id();
  batch.set_return_values(request.return_value());
  return batch;
}

absl::Status FillUpdate(absl::StatusOr<v1::BatchUpdateResponse> result,
                        v1::UpdateResponse* response) {
  VS_RETURN_IF_ERROR(result.status());
  response->set_version(result->versions(0));
  if (result->values_size() > 0) {
    response->mutable_value()->Swap(result->mutable_values(0));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status VariableServiceImpl::MaybeDropReply(absl::Status status) {
  if (status.ok() && drop_replies_.load() > 0 &&
      drop_replies_.fetch_sub(1) > 0) {
    return absl::UnavailableError("Reply dropped for a test");
  }
  return status;
}

grpc::ServerUnaryReactor* VariableServiceImpl::GetVariable(
    grpc::CallbackServerContext* context, const v1::GetVariableRequest* request,
    v1::GetVariableResponse* response) {
  gets_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::GetVariableResponse> result =
      table_->GetVariable(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, MaybeDropReply(result.status()));
}

grpc::ServerUnaryReactor* VariableServiceImpl::Read(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return ReplyRaw<v1::ReadRequest>(
      context, *request, response,
      [&](v1::ReadRequest& read) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_ASSIGN_OR_RETURN(VariableTable::SharedValue value,
                            table_->ReadShared(read.name()));
        const int64_t size = static_cast<int64_t>(value.bytes->size());
        if (size > options_.max_message_bytes) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "Variable ", read.name(), " has ", size,
              " bytes, more than one message carries (",
              options_.max_message_bytes, "); read it with ReadStream"));
        }
        return ReadResponseRaw(value);
      });
}

namespace {

// Sends a variable's bytes in chunks from its published buffer: no copy of
// the whole, and writers are not held up.
class ReadStreamReactor final
    : public grpc::ServerWriteReactor<v1::TensorChunk> {
 public:
  ReadStreamReactor(absl::StatusOr<VariableTable::SharedValue> value,
                    const std::string& name, int64_t chunk_bytes)
      : chunk_bytes_(static_cast<size_t>(chunk_bytes)) {
    if (!value.ok()) {
      Finish(ToGrpcStatus(value.status()));
      return;
    }
    value_ = *std::move(value);
    v1::StreamHeader* header = chunk_.mutable_header();
    header->set_name(name);
    header->set_dtype(value_.dtype);
    header->mutable_shape()->mutable_dims()->Assign(value_.dims.begin(),
                                                    value_.dims.end());
    header->set_version(value_.version);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "ReadStream broken"));
    } else if (offset_ == value_.bytes->size()) {
      Finish(grpc::Status::OK);
    } else {
      chunk_.clear_header();
      WriteNext();
    }
  }

  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    const size_t n = std::min(chunk_bytes_, value_.bytes->size() - offset_);
    chunk_.set_data(value_.bytes->data() + offset_, n);
    offset_ += n;
    StartWrite(&chunk_);
  }

  const size_t chunk_bytes_;
  VariableTable::SharedValue value_;
  v1::TensorChunk chunk_;
  size_t offset_ = 0;
};

}  // namespace

// Receives a variable's new content (or a delta) in chunks into the buffer
// that becomes the update's tensor, then applies it as one update.
class VariableServiceImpl::WriteStreamReactor final
    : public grpc::ServerReadReactor<v1::TensorChunk> {
 public:
  WriteStreamReactor(VariableServiceImpl* service, v1::UpdateResponse* response)
      : service_(service), response_(response) {
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    absl::Status status = ok ? Absorb() : Complete();
    if (!ok || !status.ok()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    StartRead(&chunk_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Absorb() {
    if (!started_) {
      if (!chunk_.has_header()) {
        return absl::InvalidArgumentError(
            "The first message of a WriteStream must carry the header");
      }
      header_ = std::move(*chunk_.mutable_header());
      started_ = true;
      if (!IsSupportedDType(header_.dtype())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Unsupported dtype ", static_cast<int>(header_.dtype())));
      }
      VS_RETURN_IF_ERROR(
          ValidateDims(header_.shape().dims(), /*allow_unknown=*/false));
      VS_ASSIGN_OR_RETURN(const int64_t n, NumElements(header_.shape().dims()));
      expected_ = n * static_cast<int64_t>(DTypeSize(header_.dtype()));
      if (expected_ > service_->options_.max_variable_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("A WriteStream of ", expected_,
                         " bytes is over this server's "
                         "limit of ",
                         service_->options_.max_variable_bytes));
      }
      data_.reserve(static_cast<size_t>(expected_));
    } else if (chunk_.has_header()) {
      return absl::InvalidArgumentError(
          "Only the first message of a WriteStream carries a header");
    }
    if (static_cast<int64_t>(data_.size() + chunk_.data().size()) > expected_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WriteStream of ", header_.name(), " sent more than the ", expected_,
          " bytes its shape holds"));
    }
    data_.append(chunk_.data());
    return absl::OkStatus();
  }

  absl::Status Complete() {
    if (!started_) {
      return absl::InvalidArgumentError("A WriteStream sent no header");
    }
    if (static_cast<int64_t>(data_.size()) != expected_) {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteStream of ", header_.name(), " ended after ",
                       data_.size(), " of ", expected_, " bytes"));
    }
    v1::BatchUpdateRequest request;
    v1::Update* update = request.add_updates();
    update->set_name(header_.name());
    if (header_.has_expected_version()) {
      update->set_expected_version(header_.expected_version());
    }
    v1::Tensor* tensor =
        header_.add() ? update->mutable_assign_add() : update->mutable_assign();
    tensor->set_dtype(header_.dtype());
    *tensor->mutable_shape() = header_.shape();
    *tensor->mutable_content() = std::move(data_);
    if (header_.has_id()) *request.mutable_id() = header_.id();
    service_->updates_.fetch_add(1, std::memory_order_relaxed);
    return service_->MaybeDropReply(FillUpdate(
        service_->table_->BatchUpdate(std::move(request)), response_));
  }

  VariableServiceImpl* const service_;
  v1::UpdateResponse* const response_;
  v1::TensorChunk chunk_;
  v1::StreamHeader header_;
  bool started_ = false;
  int64_t expected_ = 0;
  std::string data_;
};

grpc::ServerWriteReactor<v1::TensorChunk>* VariableServiceImpl::ReadStream(
    grpc::CallbackServerContext* context, const v1::ReadRequest* request) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return new ReadStreamReactor(table_->ReadShared(request->name()),
                               request->name(), options_.stream_chunk_bytes);
}

grpc::ServerReadReactor<v1::TensorChunk>* VariableServiceImpl::WriteStream(
    grpc::CallbackServerContext* context, v1::UpdateResponse* response) {
  return new WriteStreamReactor(this, response);
}

template <typename Request>
grpc::ServerUnaryReactor* VariableServiceImpl::ApplyOne(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer& request,
    grpc::ByteBuffer* response, v1::Tensor* (Request::*tensor)(),
    v1::Tensor* (v1::Update::*op)()) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  return ReplyRaw<Request>(
      context, request, response,
      [&](Request& one) -> absl::StatusOr<grpc::ByteBuffer> {
        v1::Update update;
        (update.*op)()->Swap((one.*tensor)());
        v1::UpdateResponse reply;
        VS_RETURN_IF_ERROR(MaybeDropReply(
            FillUpdate(table_->BatchUpdate(OneUpdate(one, &update)), &reply)));
        return SerializeRaw(reply);
      });
}

grpc::ServerUnaryReactor* VariableServiceImpl::Assign(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ApplyOne(context, *request, response,
                  &v1::AssignRequest::mutable_value,
                  &v1::Update::mutable_assign);
}

grpc::ServerUnaryReactor* VariableServiceImpl::AssignAdd(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ApplyOne(context, *request, response,
                  &v1::AssignAddRequest::mutable_delta,
                  &v1::Update::mutable_assign_add);
}

grpc::ServerUnaryReactor* VariableServiceImpl::BatchUpdate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  return ReplyRaw<v1::BatchUpdateRequest>(
      context, *request, response,
      [&](v1::BatchUpdateRequest& batch) -> absl::StatusOr<grpc::ByteBuffer> {
        absl::StatusOr<v1::BatchUpdateResponse> result =
            table_->BatchUpdate(std::move(batch));
        VS_RETURN_IF_ERROR(MaybeDropReply(result.status()));
        return SerializeRaw(*result);
      });
}

grpc::ServerUnaryReactor* VariableServiceImpl::BatchRead(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return ReplyRaw<v1::BatchReadRequest>(
      context, *request, response,
      [&](v1::BatchReadRequest& read) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_ASSIGN_OR_RETURN(auto values, table_->BatchRead(read));
        return BatchReadResponseRaw(values);
      });
}

grpc::ServerUnaryReactor* VariableServiceImpl::Gather(
    grpc::CallbackServerContext* context, const v1::GatherRequest* request,
    v1::GatherResponse* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::GatherResponse> result = table_->Gather(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::ListVariables(
    grpc::CallbackServerContext* context,
    const v1::ListVariablesRequest* request,
    v1::ListVariablesResponse* response) {
  absl::StatusOr<v1::ListVariablesResponse> result = table_->List(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Stat(
    grpc::CallbackServerContext* context, const v1::StatRequest* request,
    v1::VariableInfo* response) {
  absl::StatusOr<v1::VariableInfo> result = table_->Stat(request->name());
  if (result.ok()) *response = std::move(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Delete(
    grpc::CallbackServerContext* context, const v1::DeleteRequest* request,
    v1::DeleteResponse* response) {
  absl::StatusOr<int64_t> result =
      table_->Delete(request->name(), request->recursive());
  if (result.ok()) response->set_deleted(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::Rename(
    grpc::CallbackServerContext* context, const v1::RenameRequest* request,
    v1::RenameResponse* response) {
  absl::StatusOr<int64_t> result =
      table_->Rename(request->old_name(), request->new_name());
  if (result.ok()) response->set_renamed(*result);
  return Reply(context, result.status());
}

grpc::ServerUnaryReactor* VariableServiceImpl::SyncApply(
    grpc::CallbackServerContext* context, const v1::SyncApplyRequest* request,
    v1::SyncApplyResponse* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::SyncApplyResponse> result = sync_.Apply(*request);
  if (result.ok()) *response = std::move(*result);
  return Reply(context, MaybeDropReply(result.status()));
}

namespace {

// Answers a WaitForStep when the step is reached, or CANCELLED when the
// caller gives up (its deadline passes).
class StepWaiter final : public grpc::ServerUnaryReactor {
 public:
  StepWaiter(SyncReplicas* sync, const v1::WaitForStepRequest& request,
             v1::WaitForStepResponse* response)
      : sync_(sync) {
    id_ = sync->Wait(request.global_step(), request.step(),
                     [this, response](absl::StatusOr<int64_t> step) {
                       if (step.ok()) response->set_global_step(*step);
                       Finish(ToGrpcStatus(step.status()));
                     });
  }

  void OnCancel() override {
    if (sync_->Cancel(id_)) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                          "Gave up waiting for the step"));
    }
  }

  void OnDone() override { delete this; }

 private:
  SyncReplicas* const sync_;
  int64_t id_ = 0;
};

}  // namespace

grpc::ServerUnaryReactor* VariableServiceImpl::WaitForStep(
    grpc::CallbackServerContext* context, const v1::WaitForStepRequest* request,
    v1::WaitForStepResponse* response) {
  return new StepWaiter(&sync_, *request, response);
}

grpc::ServerUnaryReactor* VariableServiceImpl::GetServerInfo(
    grpc::CallbackServerContext* context, const v1::ServerInfoRequest* request,
    v1::ServerInfo* response) {
  const VariableTable::Totals totals = table_->GetTotals();
  response->set_version(VARSCOPE_VERSION);
  response->set_start_time_micros(start_time_micros_);
  response->set_variable_count(totals.variables);
  response->set_total_bytes(totals.bytes);
  response->set_reads(reads_.load(std::memory_order_relaxed));
  response->set_updates(updates_.load(std::memory_order_relaxed));
  response->set_gets(gets_.load(std::memory_order_relaxed));
  *response->mutable_cluster() = options_.cluster;
  return Reply(context, absl::OkStatus());
}

}  // namespace varscope::server
