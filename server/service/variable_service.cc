#include "server/service/variable_service.h"

#include <optional>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/cluster.h"
#include "common/grpc_status.h"
#include "common/shape.h"
#include "common/status.h"
#include "common/version.h"
#include "google/protobuf/io/coded_stream.h"
#include "server/service/access.h"
#include "server/service/offload.h"
#include "server/service/raw_calls.h"
#include "server/table/tensor_ops.h"

namespace varscope::server {
namespace {

// Whether a reply may be refused for the reply budget: only a read's, since
// a change's reply reports a change already made.
constexpr bool kRead = true;
constexpr bool kChange = false;

// Finishes the call with `status`.
grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context,
                                const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
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

// The exactly-once id of a change request, if it has one.
template <typename Request>
std::optional<v1::UpdateId> IdOf(const Request& request) {
  if constexpr (requires { request.id(); }) {
    if (request.has_id()) return request.id();
  }
  return std::nullopt;
}

// The shards a step was split over (span_shards), if the request says.
template <typename Request>
std::vector<int32_t> SpanOf(const Request& request) {
  if constexpr (requires { request.span_shards(); }) {
    return {request.span_shards().begin(), request.span_shards().end()};
  }
  return {};
}

// Whether a request run as a change may change the store: a REUSE get only
// reads, and goes on during a pause.
template <typename Request>
bool Changes(const Request& request) {
  if constexpr (requires { request.mode(); }) {
    return request.mode() != v1::REUSE;
  }
  return true;
}

}  // namespace

absl::Status VariableServiceImpl::MaybeDropReply(absl::Status status) {
  if (status.ok() && drop_replies_.load() > 0 &&
      drop_replies_.fetch_sub(1) > 0) {
    return absl::UnavailableError("Reply dropped for a test");
  }
  return status;
}

absl::Status VariableServiceImpl::Admit(
    const grpc::ServerContextBase& context, absl::string_view method,
    Role needed, absl::Span<const absl::string_view> names) const {
  if (options_.cluster != nullptr) {
    const auto& metadata = context.client_metadata();
    auto it = metadata.find(kClusterIdMetadataKey);
    if (it != metadata.end()) {
      VS_RETURN_IF_ERROR(options_.cluster->Admit(
          absl::string_view(it->second.data(), it->second.size())));
    }
  }
  return access().Authorize(context, method, needed, names);
}

absl::Status VariableServiceImpl::CheckMessageSize(int64_t bytes) const {
  if (bytes <= options_.max_message_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("The reply has ", bytes,
                   " bytes, more than this server's message limit of ",
                   options_.max_message_bytes, " (--max-message-bytes)"));
}

void VariableServiceImpl::RunChange(
    const grpc::ServerContextBase* caller, const v1::UpdateId* id,
    absl::Span<const int32_t> span, std::function<absl::Status()> run,
    std::function<void(const absl::Status&)> finish) {
  PauseGate* const gate = options_.pause;
  if (gate != nullptr && caller != nullptr) {
    absl::StatusOr<PauseGate::Pass> pass =
        gate->Enter(id, PauseGate::PauseIdOf(*caller));
    if (!pass.ok()) {
      finish(pass.status());
      return;
    }
    finish = [gate, pass = *pass,
              id = id == nullptr ? std::nullopt
                                 : std::optional<v1::UpdateId>(*id),
              span = std::vector<int32_t>(span.begin(), span.end()),
              finish = std::move(finish)](const absl::Status& status) {
      gate->Leave(pass, id.has_value() ? &*id : nullptr, span, status.ok());
      finish(status);
    };
  }
  // A change that waits for nothing slow costs less than the hand-off to
  // the executor and back (two thread switches and a wake-up of gRPC's
  // poller): it runs in the reaction. Measured in bench/RESULTS.md.
  if (!table_->ChangesMayWait()) {
    finish(run());
    return;
  }
  Offload(executor_, std::move(run), std::move(finish),
          absl::StrCat(options_.max_queued_changes, " changes"));
}

template <typename Request, typename Handle>
grpc::ServerUnaryReactor* VariableServiceImpl::Unary(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer& request,
    grpc::ByteBuffer* response, Handle handle, Runs runs) {
  Request parsed;
  const absl::Status status = ParseRaw(request, &parsed);
  if (!status.ok()) return Reply(context, status);
  // What the pause gate needs, before `answer` takes the request.
  const bool changes = Changes(parsed);
  const std::optional<v1::UpdateId> id = IdOf(parsed);
  const std::vector<int32_t> span = SpanOf(parsed);
  auto answer = [this, response, parsed = std::move(parsed),
                 handle = std::move(handle)]() mutable -> absl::Status {
    absl::StatusOr<grpc::ByteBuffer> reply = handle(parsed);
    VS_RETURN_IF_ERROR(reply.status());
    VS_RETURN_IF_ERROR(CheckMessageSize(reply->Length()));
    *response = *std::move(reply);
    return absl::OkStatus();
  };
  if (runs == Runs::kAtOnce) return Reply(context, answer());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RunChange(changes ? context : nullptr, id.has_value() ? &*id : nullptr, span,
            std::move(answer), [reactor](const absl::Status& done) {
              reactor->Finish(ToGrpcStatus(done));
            });
  return reactor;
}

template <typename Message>
absl::StatusOr<grpc::ByteBuffer> VariableServiceImpl::Encode(
    absl::StatusOr<Message> result, bool refusable) {
  VS_RETURN_IF_ERROR(result.status());
  return MessageRaw(*result, budget_, refusable);
}

grpc::ServerUnaryReactor* VariableServiceImpl::GetVariable(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  gets_.fetch_add(1, std::memory_order_relaxed);
  return Unary<v1::GetVariableRequest>(
      context, *request, response,
      [this, context](
          v1::GetVariableRequest& get) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(
            Admit(*context, "GetVariable",
                  get.mode() == v1::REUSE ? Role::kRead : Role::kWrite,
                  {get.name()}));
        absl::StatusOr<v1::GetVariableResponse> result =
            table_->GetVariable(get);
        VS_RETURN_IF_ERROR(MaybeDropReply(result.status()));
        return MessageRaw(*result, budget_, kChange);
      },
      Runs::kChanges);
}

grpc::ServerUnaryReactor* VariableServiceImpl::Read(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return Unary<v1::ReadRequest>(
      context, *request, response,
      [&](v1::ReadRequest& read) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(Admit(*context, "Read", Role::kRead, {read.name()}));
        VS_ASSIGN_OR_RETURN(VariableTable::SharedValue value,
                            table_->ReadShared(read.name()));
        VS_ASSIGN_OR_RETURN(grpc::ByteBuffer reply,
                            ReadResponseRaw(value, budget_));
        const int64_t size = static_cast<int64_t>(reply.Length());
        if (size > options_.max_message_bytes) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "Reading variable ", read.name(), " takes a reply of ", size,
              " bytes, more than this server's message limit of ",
              options_.max_message_bytes,
              " (--max-message-bytes); read it with ReadStream"));
        }
        return reply;
      });
}

// Sends a variable's bytes in messages that share its published buffer: no
// copy, and writers are not held up. The reply budget holds the buffer
// until the stream ends.
class VariableServiceImpl::ReadStreamReactor final
    : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ReadStreamReactor(VariableServiceImpl* service,
                    grpc::CallbackServerContext* context,
                    const grpc::ByteBuffer& request) {
    const absl::Status status = Start(service, context, request);
    if (!status.ok()) Finish(ToGrpcStatus(status));
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "ReadStream broken"));
    } else if (offset_ == value_.bytes->size()) {
      Finish(grpc::Status::OK);
    } else {
      WriteNext(nullptr);
    }
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Start(VariableServiceImpl* service,
                     grpc::CallbackServerContext* context,
                     const grpc::ByteBuffer& request) {
    v1::ReadRequest read;
    VS_RETURN_IF_ERROR(ParseRaw(request, &read));
    VS_RETURN_IF_ERROR(
        service->Admit(*context, "ReadStream", Role::kRead, {read.name()}));
    VS_ASSIGN_OR_RETURN(value_, service->table_->ReadShared(read.name()));
    VS_ASSIGN_OR_RETURN(hold_, service->budget_.Reserve({value_.bytes},
                                                        /*refusable=*/true));
    v1::StreamHeader header;
    header.set_name(read.name());
    header.set_dtype(value_.dtype);
    header.mutable_shape()->mutable_dims()->Assign(value_.dims.begin(),
                                                   value_.dims.end());
    header.set_version(value_.version);
    // Every message fits the limit with the header and a data field of the
    // largest length.
    v1::TensorChunk first;
    *first.mutable_header() = header;
    const int64_t framing =
        static_cast<int64_t>(first.ByteSizeLong()) + 1 +
        google::protobuf::io::CodedOutputStream::VarintSize64(
            static_cast<uint64_t>(service->options_.max_message_bytes));
    VS_RETURN_IF_ERROR(service->CheckMessageSize(framing + 1));
    chunk_bytes_ = static_cast<size_t>(
        std::min(service->options_.stream_chunk_bytes,
                 service->options_.max_message_bytes - framing));
    WriteNext(&header);
    return absl::OkStatus();
  }

  void WriteNext(const v1::StreamHeader* header) {
    const size_t n = std::min(chunk_bytes_, value_.bytes->size() - offset_);
    message_ = TensorChunkRaw(header, value_, offset_, n, hold_);
    offset_ += n;
    StartWrite(&message_);
  }

  size_t chunk_bytes_ = 0;
  VariableTable::SharedValue value_;
  std::shared_ptr<const ReplyBudget::Hold> hold_;
  grpc::ByteBuffer message_;
  size_t offset_ = 0;
};

absl::Status VariableServiceImpl::CheckStreamHeader(
    const v1::StreamHeader& header) const {
  // The update checks all again when it applies: the variable may change
  // while the content arrives.
  VS_ASSIGN_OR_RETURN(const v1::VariableInfo info, table_->Stat(header.name()));
  VS_RETURN_IF_ERROR(
      ShapeMismatch(header.add() ? "add a tensor" : "assign a tensor",
                    header.name(), header.dtype(), header.shape().dims(),
                    info.shape().dims(), info.dtype()));
  // A retry of an applied update (same id) must get its first reply, not a
  // version mismatch with its own result: the table decides that.
  if (header.has_expected_version() && !header.has_id() &&
      header.expected_version() != info.version()) {
    return absl::AbortedError(absl::StrCat(
        "Variable ", header.name(), " is at version ", info.version(),
        ", not the expected version ", header.expected_version()));
  }
  return absl::OkStatus();
}

// Receives a variable's new content (or a delta) in chunks into the buffer
// that becomes the update's tensor, then applies it as one update. A header
// the update cannot apply with ends the stream at once, before its content.
class VariableServiceImpl::WriteStreamReactor final
    : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  WriteStreamReactor(VariableServiceImpl* service,
                     grpc::CallbackServerContext* context,
                     grpc::ByteBuffer* response)
      : service_(service), context_(context), response_(response) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The update writes the store: off this reaction.
      service_->RunChange(
          context_, header_.has_id() ? &header_.id() : nullptr, {},
          [this] { return Complete(); },
          [this](const absl::Status& status) { Finish(ToGrpcStatus(status)); });
      return;
    }
    if (const absl::Status status = Absorb(); !status.ok()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    StartRead(&message_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Absorb() {
    VS_RETURN_IF_ERROR(ParseRaw(message_, &chunk_));
    if (!started_) {
      if (!chunk_.has_header()) {
        return absl::InvalidArgumentError(
            "The first message of a WriteStream must carry the header");
      }
      header_ = std::move(*chunk_.mutable_header());
      started_ = true;
      VS_RETURN_IF_ERROR(service_->Admit(*context_, "WriteStream", Role::kWrite,
                                         {header_.name()}));
      if (!IsSupportedDType(header_.dtype())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Unsupported dtype ", static_cast<int>(header_.dtype())));
      }
      VS_RETURN_IF_ERROR(
          ValidateDims(header_.shape().dims(), /*allow_unknown=*/false));
      VS_ASSIGN_OR_RETURN(const int64_t n, NumElements(header_.shape().dims()));
      expected_ = n * static_cast<int64_t>(DTypeSize(header_.dtype()));
      if (expected_ > service_->options_.max_variable_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "A WriteStream of ", expected_,
            " bytes is over this server's limit of ",
            service_->options_.max_variable_bytes, " (--max-variable-bytes)"));
      }
      VS_RETURN_IF_ERROR(service_->CheckStreamHeader(header_));
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
    v1::UpdateResponse reply;
    VS_RETURN_IF_ERROR(service_->MaybeDropReply(
        FillUpdate(service_->table_->BatchUpdate(std::move(request)), &reply)));
    VS_ASSIGN_OR_RETURN(*response_,
                        MessageRaw(reply, service_->budget_, kChange));
    return absl::OkStatus();
  }

  VariableServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const response_;
  grpc::ByteBuffer message_;
  v1::TensorChunk chunk_;
  v1::StreamHeader header_;
  bool started_ = false;
  int64_t expected_ = 0;
  std::string data_;
};

grpc::ServerWriteReactor<grpc::ByteBuffer>* VariableServiceImpl::ReadStream(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return new ReadStreamReactor(this, context, *request);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* VariableServiceImpl::WriteStream(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return new WriteStreamReactor(this, context, response);
}

template <typename Request>
grpc::ServerUnaryReactor* VariableServiceImpl::ApplyOne(
    grpc::CallbackServerContext* context, absl::string_view method,
    const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
    v1::Tensor* (Request::*tensor)(), v1::Tensor* (v1::Update::*op)()) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  return Unary<Request>(
      context, request, response,
      [this, context, method, tensor,
       op](Request& one) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(Admit(*context, method, Role::kWrite, {one.name()}));
        v1::Update update;
        (update.*op)()->Swap((one.*tensor)());
        v1::UpdateResponse reply;
        VS_RETURN_IF_ERROR(MaybeDropReply(
            FillUpdate(table_->BatchUpdate(OneUpdate(one, &update)), &reply)));
        if (!reply.has_value()) return MessageRaw(reply, budget_, kChange);
        // The value goes to gRPC as it is, not serialized into a copy.
        v1::Tensor& value = *reply.mutable_value();
        return UpdateResponseRaw({.bytes = std::make_shared<const std::string>(
                                      std::move(*value.mutable_content())),
                                  .version = reply.version(),
                                  .dtype = value.dtype(),
                                  .dims = {value.shape().dims().begin(),
                                           value.shape().dims().end()}},
                                 budget_);
      },
      Runs::kChanges);
}

grpc::ServerUnaryReactor* VariableServiceImpl::Assign(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ApplyOne(context, "Assign", *request, response,
                  &v1::AssignRequest::mutable_value,
                  &v1::Update::mutable_assign);
}

grpc::ServerUnaryReactor* VariableServiceImpl::AssignAdd(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return ApplyOne(context, "AssignAdd", *request, response,
                  &v1::AssignAddRequest::mutable_delta,
                  &v1::Update::mutable_assign_add);
}

grpc::ServerUnaryReactor* VariableServiceImpl::BatchUpdate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  return Unary<v1::BatchUpdateRequest>(
      context, *request, response,
      [this, context](
          v1::BatchUpdateRequest& batch) -> absl::StatusOr<grpc::ByteBuffer> {
        std::vector<absl::string_view> names;
        for (const v1::Update& update : batch.updates()) {
          names.push_back(update.name());
        }
        VS_RETURN_IF_ERROR(Admit(*context, "BatchUpdate", Role::kWrite, names));
        absl::StatusOr<v1::BatchUpdateResponse> result =
            table_->BatchUpdate(std::move(batch));
        VS_RETURN_IF_ERROR(MaybeDropReply(result.status()));
        return MessageRaw(*result, budget_, kChange);
      },
      Runs::kChanges);
}

grpc::ServerUnaryReactor* VariableServiceImpl::BatchRead(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return Unary<v1::BatchReadRequest>(
      context, *request, response,
      [&](v1::BatchReadRequest& read) -> absl::StatusOr<grpc::ByteBuffer> {
        const std::vector<absl::string_view> names(read.names().begin(),
                                                   read.names().end());
        VS_RETURN_IF_ERROR(Admit(*context, "BatchRead", Role::kRead, names));
        VS_ASSIGN_OR_RETURN(auto values, table_->BatchRead(read));
        const std::string scope = access().Scope(*context);
        std::erase_if(values, [&](const auto& entry) {
          return !VisibleInScope(entry.first, /*is_scope=*/false, scope);
        });
        return BatchReadResponseRaw(values, budget_);
      });
}

grpc::ServerUnaryReactor* VariableServiceImpl::Gather(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return Unary<v1::GatherRequest>(
      context, *request, response,
      [&](v1::GatherRequest& gather) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(
            Admit(*context, "Gather", Role::kRead, {gather.name()}));
        return Encode(table_->Gather(gather), kRead);
      });
}

grpc::ServerUnaryReactor* VariableServiceImpl::ListVariables(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::ListVariablesRequest>(
      context, *request, response,
      [&](v1::ListVariablesRequest& list) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(Admit(*context, "ListVariables", Role::kRead, {}));
        VS_ASSIGN_OR_RETURN(v1::ListVariablesResponse listed,
                            table_->List(list));
        const std::string scope = access().Scope(*context);
        v1::ListVariablesResponse visible;
        for (v1::ListVariablesResponse::Entry& entry :
             *listed.mutable_entries()) {
          if (VisibleInScope(entry.name(), entry.is_scope(), scope)) {
            *visible.add_entries() = std::move(entry);
          }
        }
        visible.set_next_page_token(listed.next_page_token());
        return MessageRaw(visible, budget_, kRead);
      });
}

grpc::ServerUnaryReactor* VariableServiceImpl::Stat(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::StatRequest>(
      context, *request, response,
      [&](v1::StatRequest& stat) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(Admit(*context, "Stat", Role::kRead, {stat.name()}));
        return Encode(table_->Stat(stat.name()), kRead);
      });
}

grpc::ServerUnaryReactor* VariableServiceImpl::Delete(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::DeleteRequest>(
      context, *request, response,
      [this,
       context](v1::DeleteRequest& del) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(
            Admit(*context, "Delete", Role::kAdmin, {del.name()}));
        VS_ASSIGN_OR_RETURN(const int64_t deleted,
                            table_->Delete(del.name(), del.recursive()));
        v1::DeleteResponse reply;
        reply.set_deleted(deleted);
        return SerializeRaw(reply);
      },
      Runs::kChanges);
}

grpc::ServerUnaryReactor* VariableServiceImpl::Rename(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::RenameRequest>(
      context, *request, response,
      [this,
       context](v1::RenameRequest& rename) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(Admit(*context, "Rename", Role::kAdmin,
                                 {rename.old_name(), rename.new_name()}));
        VS_ASSIGN_OR_RETURN(
            const int64_t renamed,
            table_->Rename(rename.old_name(), rename.new_name()));
        v1::RenameResponse reply;
        reply.set_renamed(renamed);
        return SerializeRaw(reply);
      },
      Runs::kChanges);
}

grpc::ServerUnaryReactor* VariableServiceImpl::SyncApply(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  return Unary<v1::SyncApplyRequest>(
      context, *request, response,
      [this, context](
          v1::SyncApplyRequest& apply) -> absl::StatusOr<grpc::ByteBuffer> {
        const std::string global_step = GlobalStepName(apply.global_step());
        std::vector<absl::string_view> names = {global_step};
        for (const v1::Update& update : apply.updates()) {
          names.push_back(update.name());
        }
        VS_RETURN_IF_ERROR(Admit(*context, "SyncApply", Role::kWrite, names));
        absl::StatusOr<v1::SyncApplyResponse> result = sync_.Apply(apply);
        VS_RETURN_IF_ERROR(MaybeDropReply(result.status()));
        return Encode(std::move(result), kChange);
      },
      Runs::kChanges);
}

namespace {

// Answers a WaitForStep when the step is reached, or CANCELLED when the
// caller gives up (its deadline passes).
class StepWaiter final : public grpc::ServerUnaryReactor {
 public:
  StepWaiter(SyncReplicas* sync, const v1::WaitForStepRequest& request,
             grpc::ByteBuffer* response)
      : sync_(sync) {
    id_ = sync->Wait(request.global_step(), request.step(),
                     [this, response](absl::StatusOr<int64_t> step) {
                       if (step.ok()) {
                         v1::WaitForStepResponse reply;
                         reply.set_global_step(*step);
                         *response = SerializeRaw(reply);
                       }
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
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  v1::WaitForStepRequest wait;
  absl::Status status = ParseRaw(*request, &wait);
  if (status.ok()) {
    status = Admit(*context, "WaitForStep", Role::kRead,
                   {GlobalStepName(wait.global_step())});
  }
  if (!status.ok()) return Reply(context, status);
  return new StepWaiter(&sync_, wait, response);
}

grpc::ServerUnaryReactor* VariableServiceImpl::GetServerInfo(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return Unary<v1::ServerInfoRequest>(
      context, *request, response,
      [&](v1::ServerInfoRequest&) -> absl::StatusOr<grpc::ByteBuffer> {
        VS_RETURN_IF_ERROR(
            access().Authorize(*context, "GetServerInfo", Role::kRead, {}));
        const VariableTable::Totals totals = table_->GetTotals();
        v1::ServerInfo info;
        info.set_version(std::string(Version()));
        info.set_commit(std::string(GitCommit()));
        info.set_start_time_micros(start_time_micros_);
        info.set_variable_count(totals.variables);
        info.set_total_bytes(totals.bytes);
        info.set_reads(reads_.load(std::memory_order_relaxed));
        info.set_updates(updates_.load(std::memory_order_relaxed));
        info.set_gets(gets_.load(std::memory_order_relaxed));
        if (options_.cluster != nullptr) {
          *info.mutable_cluster() = options_.cluster->Get();
        } else {
          info.mutable_cluster()->set_shard_count(1);
        }
        return SerializeRaw(info);
      });
}

template <typename Arg, typename Result>
grpc::ServerUnaryReactor* VariableServiceImpl::EmbeddingCall(
    grpc::CallbackServerContext* context, absl::string_view method,
    const grpc::ByteBuffer& request, grpc::ByteBuffer* response, Role role,
    absl::StatusOr<Result> (EmbeddingCalls::*call)(Arg&)) {
  using Request = std::remove_const_t<Arg>;
  // Calls that may write the store run on the executor, not in the
  // reaction: everything the handler uses is captured by value.
  return Unary<Request>(
      context, request, response,
      [this, context, method, role,
       call](Request& parsed) -> absl::StatusOr<grpc::ByteBuffer> {
        if (options_.embeddings == nullptr) {
          return absl::UnimplementedError(
              "This server has no embedding variables");
        }
        VS_RETURN_IF_ERROR(Admit(*context, method, role, {parsed.name()}));
        absl::StatusOr<Result> result = (options_.embeddings->*call)(parsed);
        if (role == Role::kWrite) {
          VS_RETURN_IF_ERROR(MaybeDropReply(result.status()));
        }
        return Encode(std::move(result), role == Role::kRead);
      },
      role == Role::kRead ? Runs::kAtOnce : Runs::kChanges);
}

grpc::ServerUnaryReactor* VariableServiceImpl::GetEmbeddingVariable(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  gets_.fetch_add(1, std::memory_order_relaxed);
  // REUSE only reads; the role is checked with the mode parsed.
  v1::GetEmbeddingVariableRequest peek;
  const Role role = ParseRaw(*request, &peek).ok() && peek.mode() == v1::REUSE
                        ? Role::kRead
                        : Role::kWrite;
  return EmbeddingCall(context, "GetEmbeddingVariable", *request, response,
                       role, &EmbeddingCalls::GetEmbeddingVariable);
}

grpc::ServerUnaryReactor* VariableServiceImpl::EmbeddingLookup(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  reads_.fetch_add(1, std::memory_order_relaxed);
  return EmbeddingCall(context, "EmbeddingLookup", *request, response,
                       Role::kRead, &EmbeddingCalls::Lookup);
}

grpc::ServerUnaryReactor* VariableServiceImpl::EmbeddingApply(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  return EmbeddingCall(context, "EmbeddingApply", *request, response,
                       Role::kWrite, &EmbeddingCalls::Apply);
}

grpc::ServerUnaryReactor* VariableServiceImpl::EmbeddingStat(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return EmbeddingCall(context, "EmbeddingStat", *request, response,
                       Role::kRead, &EmbeddingCalls::Stats);
}

grpc::ServerUnaryReactor* VariableServiceImpl::EmbeddingExport(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  return EmbeddingCall(context, "EmbeddingExport", *request, response,
                       Role::kRead, &EmbeddingCalls::Export);
}

grpc::ServerUnaryReactor* VariableServiceImpl::EmbeddingImport(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  updates_.fetch_add(1, std::memory_order_relaxed);
  return EmbeddingCall(context, "EmbeddingImport", *request, response,
                       Role::kWrite, &EmbeddingCalls::Import);
}

}  // namespace varscope::server
