// The benchmark's operations through varscope::Client.
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/connection.h"
#include "client/client.h"
#include "common/status.h"
#include "common/tensor.h"

namespace varscope::bench {
namespace {

absl::StatusOr<Tensor> FloatTensor(const std::string& bytes,
                                   std::vector<int64_t> dims) {
  return Tensor::FromBytes(v1::DT_FLOAT, std::move(dims), bytes);
}

int64_t NumFloats(const std::string& bytes) {
  return static_cast<int64_t>(bytes.size() / sizeof(float));
}

class VarscopeConnection final : public Connection {
 public:
  explicit VarscopeConnection(std::unique_ptr<Client> client)
      : client_(std::move(client)) {}

  absl::Status Prepare(const std::string& key,
                       const std::string& value) override {
    VS_RETURN_IF_ERROR(Create(key, {NumFloats(value)}));
    return Write(key, value);
  }

  absl::Status Read(const std::string& key, size_t expected_bytes) override {
    VS_ASSIGN_OR_RETURN(ReadResult result, client_->Read(key));
    if (result.value.bytes().size() != expected_bytes) {
      return absl::FailedPreconditionError(
          absl::StrCat(key, " holds ", result.value.bytes().size(),
                       " bytes, not ", expected_bytes));
    }
    return absl::OkStatus();
  }

  absl::Status Write(const std::string& key,
                     const std::string& value) override {
    VS_ASSIGN_OR_RETURN(Tensor tensor, FloatTensor(value, {NumFloats(value)}));
    return client_->Assign(key, std::move(tensor)).status();
  }

  absl::Status Accumulate(const std::string& key,
                          const std::string& delta) override {
    VS_ASSIGN_OR_RETURN(Tensor tensor, FloatTensor(delta, {NumFloats(delta)}));
    return client_->AssignAdd(key, std::move(tensor)).status();
  }

  absl::Status TrainStep(const std::vector<std::string>& keys,
                         const std::vector<std::string>& grads) override {
    v1::BatchReadRequest pull;
    for (const std::string& key : keys) pull.add_names(key);
    VS_ASSIGN_OR_RETURN(v1::BatchReadResponse pulled, client_->BatchRead(pull));
    if (pulled.entries_size() != static_cast<int>(keys.size())) {
      return absl::FailedPreconditionError("BatchRead returned too few");
    }
    v1::BatchUpdateRequest push;
    for (size_t i = 0; i < keys.size(); ++i) {
      v1::Update* update = push.add_updates();
      update->set_name(keys[i]);
      VS_ASSIGN_OR_RETURN(Tensor grad,
                          FloatTensor(grads[i], {NumFloats(grads[i])}));
      TensorToProto(std::move(grad), update->mutable_assign_add());
    }
    return client_->BatchUpdate(std::move(push)).status();
  }

  absl::Status PrepareTable(const std::string& key, int64_t rows,
                            int64_t width) override {
    return Create(key, {rows, width});
  }

  absl::Status Gather(const std::string& key,
                      const std::vector<int64_t>& indices) override {
    const int64_t n = static_cast<int64_t>(indices.size());
    VS_ASSIGN_OR_RETURN(ReadResult rows,
                        client_->Gather(key, Tensor::FromVector<int64_t>(
                                                 v1::DT_INT64, {n}, indices)));
    if (rows.value.dims().empty() || rows.value.dims()[0] != n) {
      return absl::FailedPreconditionError("Gather returned too few rows");
    }
    return absl::OkStatus();
  }

  absl::Status Scatter(const std::string& key,
                       const std::vector<int64_t>& indices,
                       const std::string& rows) override {
    v1::BatchUpdateRequest request;
    v1::Update* update = request.add_updates();
    update->set_name(key);
    v1::Scatter* scatter = update->mutable_scatter();
    scatter->set_mode(v1::Scatter::ADD);
    VS_RETURN_IF_ERROR(SetRows(indices, rows, scatter->mutable_indices(),
                               scatter->mutable_rows()));
    return client_->BatchUpdate(std::move(request)).status();
  }

  absl::Status SparseAdagrad(const std::string& key,
                             const std::vector<int64_t>& indices,
                             const std::string& grads) override {
    v1::BatchUpdateRequest request;
    v1::Update* update = request.add_updates();
    update->set_name(key);
    v1::ApplyGradient* step = update->mutable_apply_gradient();
    step->mutable_optimizer()->set_learning_rate(0.01);
    step->mutable_optimizer()->mutable_adagrad();
    VS_RETURN_IF_ERROR(SetRows(indices, grads, step->mutable_indices(),
                               step->mutable_gradient()));
    return client_->BatchUpdate(std::move(request)).status();
  }

 private:
  // Sets `indices_proto` and `rows_proto` to `indices` and the float rows
  // `rows` (one per index).
  static absl::Status SetRows(const std::vector<int64_t>& indices,
                              const std::string& rows,
                              v1::Tensor* indices_proto,
                              v1::Tensor* rows_proto) {
    const int64_t n = static_cast<int64_t>(indices.size());
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {n}, indices),
                  indices_proto);
    VS_ASSIGN_OR_RETURN(Tensor values,
                        FloatTensor(rows, {n, NumFloats(rows) / n}));
    TensorToProto(std::move(values), rows_proto);
    return absl::OkStatus();
  }

  // Creates the float32 variable `key` of `dims`, zero-filled, unless it
  // exists with those dims.
  absl::Status Create(const std::string& key,
                      const std::vector<int64_t>& dims) {
    v1::GetVariableRequest request;
    request.set_name(key);
    request.set_mode(v1::AUTO_REUSE);
    request.set_dtype(v1::DT_FLOAT);
    request.mutable_shape()->mutable_dims()->Assign(dims.begin(), dims.end());
    request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
    return client_->GetVariable(request).status();
  }

  const std::unique_ptr<Client> client_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> ConnectVarscope(
    const std::string& address) {
  ClientOptions options;
  options.own_connection = true;
  // 16 clients moving 64 MiB each through one loaded server take a while.
  options.timeout = absl::Minutes(5);
  std::unique_ptr<Client> client = Client::Connect(address, options);
  VS_RETURN_IF_ERROR(client->GetServerInfo().status());
  return std::make_unique<VarscopeConnection>(std::move(client));
}

}  // namespace varscope::bench
