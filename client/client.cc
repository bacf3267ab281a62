#include "client/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <random>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "common/grpc_status.h"
#include "common/status.h"

namespace varscope {
namespace {

absl::StatusOr<UpdateResult> ToUpdateResult(v1::UpdateResponse& response) {
  UpdateResult result;
  result.version = response.version();
  if (response.has_value()) {
    VS_ASSIGN_OR_RETURN(result.value,
                        TensorFromProto(response.mutable_value()));
  }
  return result;
}

template <typename Request>
void SetUpdateFields(absl::string_view name, const UpdateOptions& options,
                     Request& request) {
  request.set_name(std::string(name));
  if (options.expected_version.has_value()) {
    request.set_expected_version(*options.expected_version);
  }
  request.set_return_value(options.return_value);
}

// The header of a WriteStream doing what `request` asks.
template <typename Request>
v1::StreamHeader StreamHeaderOf(const Request& request, bool add) {
  v1::StreamHeader header;
  header.set_name(request.name());
  header.set_add(add);
  if (request.has_expected_version()) {
    header.set_expected_version(request.expected_version());
  }
  if (request.has_id()) *header.mutable_id() = request.id();
  return header;
}

// A random id. Not from absl::BitGen: its seeds come from a process-wide
// pool that processes forked from one process share, which would give their
// clients the same ids (and the server would drop their updates as
// duplicates).
std::string NewClientId() {
  std::random_device device;
  auto word = [&device] {
    return (uint64_t{device()} << 32) | uint64_t{device()};
  };
  return absl::StrFormat("%016x%016x", word(), word());
}

}  // namespace

bool Client::StreamIt(const Tensor& tensor,
                      const UpdateOptions& options) const {
  // Streams reply with a version only: values come back by unary calls.
  return !options.return_value && static_cast<int64_t>(tensor.bytes().size()) >
                                      options_.stream_threshold_bytes;
}

std::unique_ptr<Client> Client::Connect(const std::string& address,
                                        const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  if (options.own_connection) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args);
  return std::make_unique<Client>(v1::VariableService::NewStub(channel),
                                  options);
}

Client::Client(std::shared_ptr<v1::VariableService::StubInterface> stub,
               const ClientOptions& options)
    : stub_(std::move(stub)), options_(options), client_id_(NewClientId()) {}

bool Client::Identify(v1::UpdateId* id) {
  if (!options_.exactly_once) return false;
  id->set_client_id(client_id_);
  id->set_sequence(sequence_.fetch_add(1) + 1);
  return true;
}

template <typename Call>
absl::Status Client::Run(bool idempotent, Call call) {
  return Run(idempotent, call, options_.timeout);
}

template <typename Call>
absl::Status Client::Run(bool idempotent, Call call, absl::Duration timeout) {
  absl::Duration backoff = options_.initial_backoff;
  absl::BitGen gen;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    absl::Status status = FromGrpcStatus(call(&context));
    if (status.ok() || !idempotent || !absl::IsUnavailable(status) ||
        attempt >= options_.max_attempts) {
      return status;
    }
    // Full jitter: sleep uniformly in [backoff/2, backoff].
    absl::SleepFor(backoff * absl::Uniform(gen, 0.5, 1.0));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<v1::GetVariableResponse> Client::GetVariable(
    const v1::GetVariableRequest& request) {
  v1::GetVariableResponse response;
  VS_RETURN_IF_ERROR(
      Run(request.mode() != v1::CREATE, [&](grpc::ClientContext* context) {
        return stub_->GetVariable(context, request, &response);
      }));
  return response;
}

absl::StatusOr<ReadResult> Client::Read(absl::string_view name) {
  v1::ReadRequest request;
  request.set_name(std::string(name));
  v1::ReadResponse response;
  absl::Status status = Run(true, [&](grpc::ClientContext* context) {
    return stub_->Read(context, request, &response);
  });
  // Too large for one message: stream it.
  if (absl::IsResourceExhausted(status)) return ReadByStream(request);
  VS_RETURN_IF_ERROR(status);
  VS_ASSIGN_OR_RETURN(Tensor value, TensorFromProto(response.mutable_value()));
  return ReadResult{std::move(value), response.version()};
}

absl::StatusOr<ReadResult> Client::ReadByStream(
    const v1::ReadRequest& request) {
  v1::StreamHeader header;
  std::string bytes;
  VS_RETURN_IF_ERROR(Run(true, [&](grpc::ClientContext* context) {
    bytes.clear();
    std::unique_ptr<grpc::ClientReaderInterface<v1::TensorChunk>> reader =
        stub_->ReadStream(context, request);
    v1::TensorChunk chunk;
    bool first = true;
    while (reader->Read(&chunk)) {
      if (first) {
        header = chunk.header();
        int64_t n = 1;
        for (int64_t d : header.shape().dims()) n *= d;
        bytes.reserve(static_cast<size_t>(n) * DTypeSize(header.dtype()));
        first = false;
      }
      bytes.append(chunk.data());
    }
    return reader->Finish();
  }));
  VS_ASSIGN_OR_RETURN(Tensor value,
                      Tensor::FromBytes(header.dtype(),
                                        {header.shape().dims().begin(),
                                         header.shape().dims().end()},
                                        std::move(bytes)));
  return ReadResult{std::move(value), header.version()};
}

absl::StatusOr<UpdateResult> Client::WriteByStream(v1::StreamHeader header,
                                                   const Tensor& tensor,
                                                   bool idempotent) {
  header.set_dtype(tensor.dtype());
  header.mutable_shape()->mutable_dims()->Assign(tensor.dims().begin(),
                                                 tensor.dims().end());
  v1::UpdateResponse response;
  VS_RETURN_IF_ERROR(Run(idempotent, [&](grpc::ClientContext* context) {
    std::unique_ptr<grpc::ClientWriterInterface<v1::TensorChunk>> writer =
        stub_->WriteStream(context, &response);
    const absl::string_view bytes = tensor.bytes();
    const size_t step = static_cast<size_t>(options_.stream_chunk_bytes);
    size_t offset = 0;
    v1::TensorChunk chunk;
    *chunk.mutable_header() = header;
    do {
      const size_t n = std::min(step, bytes.size() - offset);
      chunk.set_data(bytes.data() + offset, n);
      offset += n;
      if (!writer->Write(chunk)) break;  // the server ended the call
      chunk.clear_header();
    } while (offset < bytes.size());
    writer->WritesDone();
    return writer->Finish();
  }));
  return ToUpdateResult(response);
}

absl::StatusOr<UpdateResult> Client::Assign(absl::string_view name,
                                            Tensor value,
                                            const UpdateOptions& options) {
  v1::AssignRequest request;
  SetUpdateFields(name, options, request);
  // Assigning the same value again is harmless unless a version is expected.
  const bool idempotent =
      Identify(request.mutable_id()) || !options.expected_version.has_value();
  if (StreamIt(value, options)) {
    return WriteByStream(StreamHeaderOf(request, /*add=*/false), value,
                         idempotent);
  }
  TensorToProto(std::move(value), request.mutable_value());
  v1::UpdateResponse response;
  VS_RETURN_IF_ERROR(Run(idempotent, [&](grpc::ClientContext* context) {
    return stub_->Assign(context, request, &response);
  }));
  return ToUpdateResult(response);
}

absl::StatusOr<UpdateResult> Client::AssignAdd(absl::string_view name,
                                               Tensor delta,
                                               const UpdateOptions& options) {
  v1::AssignAddRequest request;
  SetUpdateFields(name, options, request);
  const bool idempotent = Identify(request.mutable_id());
  if (StreamIt(delta, options)) {
    return WriteByStream(StreamHeaderOf(request, /*add=*/true), delta,
                         idempotent);
  }
  TensorToProto(std::move(delta), request.mutable_delta());
  v1::UpdateResponse response;
  VS_RETURN_IF_ERROR(Run(idempotent, [&](grpc::ClientContext* context) {
    return stub_->AssignAdd(context, request, &response);
  }));
  return ToUpdateResult(response);
}

absl::StatusOr<v1::ListVariablesResponse> Client::ListVariables(
    const v1::ListVariablesRequest& request) {
  v1::ListVariablesResponse response;
  VS_RETURN_IF_ERROR(Run(true, [&](grpc::ClientContext* context) {
    return stub_->ListVariables(context, request, &response);
  }));
  return response;
}

absl::StatusOr<v1::VariableInfo> Client::Stat(absl::string_view name) {
  v1::StatRequest request;
  request.set_name(std::string(name));
  v1::VariableInfo response;
  VS_RETURN_IF_ERROR(Run(true, [&](grpc::ClientContext* context) {
    return stub_->Stat(context, request, &response);
  }));
  return response;
}

absl::StatusOr<int64_t> Client::Delete(absl::string_view name, bool recursive) {
  v1::DeleteRequest request;
  request.set_name(std::string(name));
  request.set_recursive(recursive);
  v1::DeleteResponse response;
  VS_RETURN_IF_ERROR(Run(false, [&](grpc::ClientContext* context) {
    return stub_->Delete(context, request, &response);
  }));
  return response.deleted();
}

absl::StatusOr<int64_t> Client::Rename(absl::string_view old_name,
                                       absl::string_view new_name) {
  v1::RenameRequest request;
  request.set_old_name(std::string(old_name));
  request.set_new_name(std::string(new_name));
  v1::RenameResponse response;
  VS_RETURN_IF_ERROR(Run(false, [&](grpc::ClientContext* context) {
    return stub_->Rename(context, request, &response);
  }));
  return response.renamed();
}

absl::StatusOr<v1::ServerInfo> Client::GetServerInfo() {
  v1::ServerInfoRequest request;
  v1::ServerInfo response;
  VS_RETURN_IF_ERROR(Run(true, [&](grpc::ClientContext* context) {
    return stub_->GetServerInfo(context, request, &response);
  }));
  return response;
}

absl::StatusOr<v1::BatchUpdateResponse> Client::BatchUpdate(
    v1::BatchUpdateRequest request) {
  const bool idempotent = request.has_id() || Identify(request.mutable_id());
  v1::BatchUpdateResponse response;
  VS_RETURN_IF_ERROR(Run(idempotent, [&](grpc::ClientContext* context) {
    return stub_->BatchUpdate(context, request, &response);
  }));
  return response;
}

absl::StatusOr<v1::SyncApplyResponse> Client::SyncApply(
    v1::SyncApplyRequest request) {
  const bool idempotent = request.has_id() || Identify(request.mutable_id());
  v1::SyncApplyResponse response;
  VS_RETURN_IF_ERROR(Run(idempotent, [&](grpc::ClientContext* context) {
    return stub_->SyncApply(context, request, &response);
  }));
  return response;
}

absl::StatusOr<int64_t> Client::WaitForStep(absl::string_view global_step,
                                            int64_t step,
                                            absl::Duration timeout) {
  v1::WaitForStepRequest request;
  request.set_global_step(std::string(global_step));
  request.set_step(step);
  v1::WaitForStepResponse response;
  VS_RETURN_IF_ERROR(Run(
      true,
      [&](grpc::ClientContext* context) {
        return stub_->WaitForStep(context, request, &response);
      },
      timeout));
  return response.global_step();
}

absl::StatusOr<v1::BatchReadResponse> Client::BatchRead(
    const v1::BatchReadRequest& request) {
  v1::BatchReadResponse response;
  VS_RETURN_IF_ERROR(Run(true, [&](grpc::ClientContext* context) {
    return stub_->BatchRead(context, request, &response);
  }));
  return response;
}

absl::StatusOr<ReadResult> Client::Gather(absl::string_view name,
                                          const Tensor& indices) {
  v1::GatherRequest request;
  request.set_name(std::string(name));
  TensorToProto(indices, request.mutable_indices());
  v1::GatherResponse response;
  VS_RETURN_IF_ERROR(Run(true, [&](grpc::ClientContext* context) {
    return stub_->Gather(context, request, &response);
  }));
  VS_ASSIGN_OR_RETURN(Tensor rows, TensorFromProto(response.mutable_rows()));
  return ReadResult{std::move(rows), response.version()};
}

}  // namespace varscope
