// varscope_crash_writer ADDRESS WRITER LOG: one writer process of the crash
// harness (crash_test.cc). One thread per kind of write, each on variables
// of its own under `w<WRITER>/`, forever (until killed). Every write is
// retried with the same exactly-once id until it is acknowledged, so each
// one is applied once whatever happens to the server. Each thread appends
// to LOG, one write(2) per line, with CLOCK_MONOTONIC nanoseconds T:
//   B KIND N T        write N of KIND begins
//   A KIND N T        write N of KIND was acknowledged
// Write N (N = 1, 2, ...) of each kind:
//   add      w/add += 1 (every element)
//   assign   w/assign = N (every element)
//   batch    one batch: w/batch/a += 1, w/batch/b -= 1
//   pair     w/pair/x = N, then (another call) w/pair/y = N
//   scatter  row N % 64 of w/rows = N (one chunk of eight)
//   create   get_variable(w/made/N, AUTO_REUSE) of int64 [2, 64], every
//            element N
//   sparse   a sparse Adagrad step (learning rate 1, initial accumulator
//            1) with gradient -1 on rows (7N + 64j) % 256, j = 0..3, of
//            w/sparse (float [256, 16], zeros) and its slot
//            w/sparse/Adagrad: each row records the steps that touched it
//   embed    a counted lookup and a sparse Adagrad step of the embedding
//            variable w/emb (see crash_embedding.h)
// The other variables are int64 [64, 64] (32 KiB, eight chunks of 4 KiB with
// the harness's --chunk-bytes).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "tests/crash/crash_embedding.h"
#include "tests/testing/updates.h"

namespace varscope {
namespace {

using ::varscope::crash::kEmbedDim;
using ::varscope::crash::kEmbedFilterFreq;
using ::varscope::crash::kEmbedSeed;
using ::varscope::crash::kEmbedTouched;
using ::varscope::crash::kLookupKeys;
using ::varscope::crash::kUpdateKeys;
using ::varscope::crash::LookupKey;
using ::varscope::crash::LookupRow;
using ::varscope::crash::UpdateKey;
using ::varscope::crash::UpdateRow;
using ::varscope::testing::WholeUpdate;

constexpr int64_t kRows = 64;
constexpr int64_t kCols = 64;
constexpr int64_t kMadeRows = 2;
constexpr int64_t kSparseRows = 256;
constexpr int64_t kSparseCols = 16;
constexpr int64_t kSparseTouched = 4;

int64_t MonotonicNanos() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

Tensor Filled(int64_t value, int64_t rows = kRows) {
  return Tensor::FromVector<int64_t>(
      v1::DT_INT64, {rows, kCols},
      std::vector<int64_t>(static_cast<size_t>(rows * kCols), value));
}

v1::GetVariableRequest Variable(const std::string& name, int64_t value,
                                int64_t rows = kRows) {
  v1::GetVariableRequest request;
  request.set_name(name);
  request.set_mode(v1::AUTO_REUSE);
  request.set_dtype(v1::DT_INT64);
  request.mutable_shape()->add_dims(rows);
  request.mutable_shape()->add_dims(kCols);
  v1::Initializer* init = request.mutable_initializer();
  init->set_kind(v1::Initializer::CONSTANT);
  TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {}, {&value, 1}),
                init->mutable_value());
  return request;
}

class Writer {
 public:
  Writer(const std::string& address, std::string prefix, int log_fd)
      : prefix_(std::move(prefix)), log_fd_(log_fd) {
    // Reconnect fast after the harness restarts the server.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    ClientOptions options;
    options.max_attempts = 1;  // retried here, with the same id
    options.timeout = kAttempt;
    const std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::VariableService::NewStub(channel);
    client_ = std::make_unique<Client>(
        std::vector<std::shared_ptr<grpc::ChannelInterface>>{channel}, options);
  }

  void Run() {
    std::vector<std::thread> threads;
    threads.emplace_back([this] { Loop("add", &Writer::Add); });
    threads.emplace_back([this] { Loop("assign", &Writer::Assign); });
    threads.emplace_back([this] { Loop("batch", &Writer::Batch); });
    threads.emplace_back([this] { Loop("pair", &Writer::Pair); });
    threads.emplace_back([this] { Loop("scatter", &Writer::Scatter); });
    threads.emplace_back([this] { Loop("create", &Writer::Create); });
    threads.emplace_back([this] { Loop("sparse", &Writer::Sparse); });
    threads.emplace_back([this] { Loop("embed", &Writer::Embed); });
    for (std::thread& t : threads) t.join();
  }

 private:
  using Op = void (Writer::*)(const std::string& kind, int64_t n);
  static constexpr absl::Duration kAttempt = absl::Seconds(2);

  void Log(const std::string& line) {
    (void)!write(log_fd_, line.data(), line.size());
  }

  void Loop(const std::string& kind, Op op) {
    for (int64_t n = 1;; ++n) {
      Log(absl::StrCat("B ", kind, " ", n, " ", MonotonicNanos(), "\n"));
      (this->*op)(kind, n);
      Log(absl::StrCat("A ", kind, " ", n, " ", MonotonicNanos(), "\n"));
    }
  }

  // Applies `request` as update `sequence` of this kind's client id,
  // retrying until it is acknowledged.
  void Apply(const std::string& kind, int64_t sequence,
             v1::BatchUpdateRequest request) {
    request.mutable_id()->set_client_id(absl::StrCat(prefix_, "-", kind));
    request.mutable_id()->set_sequence(sequence);
    while (!client_->BatchUpdate(request).ok()) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  // Calls `method` of the stub with `request` until it succeeds (the
  // request keeps its exactly-once id, if it has one).
  template <typename Request, typename Response>
  void Call(grpc::Status (v1::VariableService::StubInterface::*method)(
                grpc::ClientContext*, const Request&, Response*),
            const Request& request) {
    for (;;) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + kAttempt));
      Response response;
      if (((*stub_).*method)(&context, request, &response).ok()) return;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void Ensure(const v1::GetVariableRequest& request) {
    while (!client_->GetVariable(request).ok()) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::string Name(const std::string& suffix) const {
    return absl::StrCat(prefix_, "/", suffix);
  }

  void Add(const std::string& kind, int64_t n) {
    if (n == 1) Ensure(Variable(Name("add"), 0));
    v1::BatchUpdateRequest request;
    *request.add_updates() = WholeUpdate(Name("add"), Filled(1), true);
    Apply(kind, n, std::move(request));
  }

  void Assign(const std::string& kind, int64_t n) {
    if (n == 1) Ensure(Variable(Name("assign"), 0));
    v1::BatchUpdateRequest request;
    *request.add_updates() = WholeUpdate(Name("assign"), Filled(n), false);
    Apply(kind, n, std::move(request));
  }

  void Batch(const std::string& kind, int64_t n) {
    if (n == 1) {
      Ensure(Variable(Name("batch/a"), 0));
      Ensure(Variable(Name("batch/b"), 0));
    }
    v1::BatchUpdateRequest request;
    *request.add_updates() = WholeUpdate(Name("batch/a"), Filled(1), true);
    *request.add_updates() = WholeUpdate(Name("batch/b"), Filled(-1), true);
    Apply(kind, n, std::move(request));
  }

  void Pair(const std::string& kind, int64_t n) {
    if (n == 1) {
      Ensure(Variable(Name("pair/x"), 0));
      Ensure(Variable(Name("pair/y"), 0));
    }
    for (const char* leaf : {"x", "y"}) {
      v1::BatchUpdateRequest request;
      *request.add_updates() =
          WholeUpdate(Name(absl::StrCat("pair/", leaf)), Filled(n), false);
      Apply(kind, 2 * n - (leaf[0] == 'x' ? 1 : 0), std::move(request));
    }
  }

  void Scatter(const std::string& kind, int64_t n) {
    if (n == 1) Ensure(Variable(Name("rows"), 0));
    v1::BatchUpdateRequest request;
    v1::Update* update = request.add_updates();
    update->set_name(Name("rows"));
    const int64_t row = n % kRows;
    TensorToProto(Tensor::FromVector<int64_t>(v1::DT_INT64, {1}, {&row, 1}),
                  update->mutable_scatter()->mutable_indices());
    TensorToProto(Filled(n, 1), update->mutable_scatter()->mutable_rows());
    update->mutable_scatter()->set_mode(v1::Scatter::UPDATE);
    Apply(kind, n, std::move(request));
  }

  void Sparse(const std::string& kind, int64_t n) {
    if (n == 1) {
      v1::GetVariableRequest create;
      create.set_name(Name("sparse"));
      create.set_mode(v1::AUTO_REUSE);
      create.set_dtype(v1::DT_FLOAT);
      create.mutable_shape()->add_dims(kSparseRows);
      create.mutable_shape()->add_dims(kSparseCols);
      create.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
      Ensure(create);
    }
    std::vector<int64_t> rows;
    for (int64_t j = 0; j < kSparseTouched; ++j) {
      rows.push_back((7 * n + 64 * j) % kSparseRows);
    }
    v1::BatchUpdateRequest request;
    v1::Update* update = request.add_updates();
    update->set_name(Name("sparse"));
    v1::ApplyGradient* step = update->mutable_apply_gradient();
    step->mutable_optimizer()->set_learning_rate(1);
    step->mutable_optimizer()->mutable_adagrad()->set_initial_accumulator_value(
        1);
    TensorToProto(
        Tensor::FromVector<float>(
            v1::DT_FLOAT, {kSparseTouched, kSparseCols},
            std::vector<float>(
                static_cast<size_t>(kSparseTouched * kSparseCols), -1.0f)),
        step->mutable_gradient());
    TensorToProto(
        Tensor::FromVector<int64_t>(v1::DT_INT64, {kSparseTouched}, rows),
        step->mutable_indices());
    Apply(kind, n, std::move(request));
  }

  void Embed(const std::string& kind, int64_t n) {
    if (n == 1) {
      // The variable, and a twin the checks read initial rows from.
      for (const char* leaf : {"emb", "emb_twin"}) {
        v1::GetEmbeddingVariableRequest create;
        create.set_name(Name(leaf));
        create.set_mode(v1::AUTO_REUSE);
        create.set_embedding_dim(kEmbedDim);
        create.set_filter_freq(kEmbedFilterFreq);
        create.mutable_initializer()->set_kind(v1::Initializer::RANDOM_UNIFORM);
        create.mutable_initializer()->set_seed(kEmbedSeed);
        Call(&v1::VariableService::StubInterface::GetEmbeddingVariable, create);
      }
      std::vector<int64_t> keys;
      for (int64_t r = 0; r < kUpdateKeys; ++r) keys.push_back(UpdateKey(r));
      v1::EmbeddingImportRequest import;
      import.set_name(Name("emb"));
      TensorToProto(
          Tensor::FromVector<int64_t>(v1::DT_INT64, {kUpdateKeys}, keys),
          import.mutable_keys());
      TensorToProto(Tensor::FromVector<float>(
                        v1::DT_FLOAT, {kUpdateKeys, kEmbedDim},
                        std::vector<float>(kUpdateKeys * kEmbedDim, 0.0f)),
                    import.mutable_values());
      import.mutable_id()->set_client_id(
          absl::StrCat(prefix_, "-", kind, "-import"));
      import.mutable_id()->set_sequence(1);
      Call(&v1::VariableService::StubInterface::EmbeddingImport, import);
    }
    std::vector<int64_t> looked, updated;
    for (int64_t j = 0; j < kEmbedTouched; ++j) {
      looked.push_back(LookupKey(LookupRow(n, j)));
      updated.push_back(UpdateKey(UpdateRow(n, j)));
    }
    looked.push_back(LookupKey(kLookupKeys + n));
    v1::EmbeddingLookupRequest lookup;
    lookup.set_name(Name("emb"));
    TensorToProto(
        Tensor::FromVector<int64_t>(v1::DT_INT64, {kEmbedTouched + 1}, looked),
        lookup.mutable_keys());
    lookup.set_global_step(n);
    Call(&v1::VariableService::StubInterface::EmbeddingLookup, lookup);

    v1::EmbeddingApplyRequest step;
    step.set_name(Name("emb"));
    TensorToProto(
        Tensor::FromVector<int64_t>(v1::DT_INT64, {kEmbedTouched}, updated),
        step.mutable_keys());
    TensorToProto(Tensor::FromVector<float>(
                      v1::DT_FLOAT, {kEmbedTouched, kEmbedDim},
                      std::vector<float>(kEmbedTouched * kEmbedDim, -1.0f)),
                  step.mutable_gradients());
    step.mutable_optimizer()->set_learning_rate(1);
    step.mutable_optimizer()->mutable_adagrad()->set_initial_accumulator_value(
        1);
    step.set_global_step(n);
    step.mutable_id()->set_client_id(absl::StrCat(prefix_, "-", kind));
    step.mutable_id()->set_sequence(n);
    Call(&v1::VariableService::StubInterface::EmbeddingApply, step);
  }

  void Create(const std::string& kind, int64_t n) {
    Ensure(Variable(Name(absl::StrCat("made/", n)), n, kMadeRows));
  }

  const std::string prefix_;
  const int log_fd_;
  std::shared_ptr<v1::VariableService::StubInterface> stub_;
  std::unique_ptr<Client> client_;
};

}  // namespace
}  // namespace varscope

int main(int argc, char** argv) {
  int writer = 0;
  if (argc != 4 || !absl::SimpleAtoi(argv[2], &writer)) {
    std::fprintf(stderr, "usage: varscope_crash_writer ADDRESS WRITER LOG\n");
    return 2;
  }
  const int log_fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log_fd < 0) {
    std::perror(argv[3]);
    return 1;
  }
  varscope::Writer(argv[1], absl::StrCat("w", writer), log_fd).Run();
  return 0;
}
