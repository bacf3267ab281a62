// End-to-end: reads, updates, listing, deletion and restarts against a real
// server.
#include <grpcpp/grpcpp.h>

#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/storage/storage.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

class VariableOpsTest : public ::testing::Test {
 protected:
  absl::StatusOr<Variable> Create(
      const std::string& name, std::vector<int64_t> shape,
      DType dtype = v1::DT_FLOAT,
      v1::Initializer::Kind init = v1::Initializer::ZEROS) {
    VariableScope scope;
    GetVariableOptions options;
    options.shape = std::move(shape);
    options.dtype = dtype;
    options.initializer = v1::Initializer();
    options.initializer->set_kind(init);
    return GetVariable(client_, scope, name, options);
  }

  static Tensor Floats(std::vector<int64_t> dims, std::vector<float> values) {
    return Tensor::FromVector<float>(v1::DT_FLOAT, std::move(dims), values);
  }

  TestServer server_;
  std::shared_ptr<Client> client_ = server_.NewClient();
};

std::vector<std::string> ListNames(Client& client, const std::string& scope,
                                   bool recursive, int page_size) {
  std::vector<std::string> names;
  v1::ListVariablesRequest request;
  request.set_scope(scope);
  request.set_recursive(recursive);
  request.set_page_size(page_size);
  VS_EXPECT_OK(
      client.ForEachPage(request, [&](v1::ListVariablesResponse& page) {
        for (const auto& e : page.entries()) {
          names.push_back(e.is_scope() ? e.name() + "/" : e.name());
        }
        return absl::OkStatus();
      }));
  return names;
}

TEST_F(VariableOpsTest, AssignReplacesTheValueAndBumpsTheVersion) {
  VS_ASSERT_OK_AND_ASSIGN(Variable w, Create("w", {2}));
  VS_ASSERT_OK_AND_ASSIGN(UpdateResult r, w.Assign(Floats({2}, {1.5, -2})));
  EXPECT_EQ(r.version, 2);
  EXPECT_EQ(w.version(), 2);
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(read.version, 2);
  EXPECT_THAT(read.value.flat<float>(), ElementsAre(1.5f, -2.0f));
}

TEST_F(VariableOpsTest, AssignAddAddsElementwiseAndCanReturnTheValue) {
  VS_ASSERT_OK_AND_ASSIGN(
      Variable w, Create("w", {3}, v1::DT_FLOAT, v1::Initializer::ONES));
  VS_ASSERT_OK_AND_ASSIGN(UpdateResult r, w.AssignAdd(Floats({3}, {1, 2, 3}),
                                                      {.return_value = true}));
  EXPECT_EQ(r.version, 2);
  ASSERT_TRUE(r.value.has_value());
  EXPECT_THAT(r.value->flat<float>(), ElementsAre(2, 3, 4));
}

TEST_F(VariableOpsTest, WrongShapeOrDtypeChangesNothing) {
  VS_ASSERT_OK_AND_ASSIGN(Variable w, Create("w", {2, 2}));
  EXPECT_THAT(client_->Assign("w", Floats({4}, {1, 2, 3, 4})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Cannot assign a tensor of shape (4,) to variable w of "
                       "shape (2, 2)"));
  EXPECT_THAT(
      client_->AssignAdd("w", Tensor::FromVector<double>(v1::DT_DOUBLE, {2, 2},
                                                         {{1, 2, 3, 4}})),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Cannot add a tensor of dtype float64 to variable w of "
               "dtype float32"));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(read.version, 1);
  EXPECT_THAT(read.value.flat<float>(), ElementsAre(0, 0, 0, 0));
}

TEST_F(VariableOpsTest, ByteLengthThatDoesNotMatchTheShapeIsRejected) {
  VS_ASSERT_OK(Create("w", {2}).status());
  auto stub = v1::VariableService::NewStub(grpc::CreateChannel(
      server_.address(), grpc::InsecureChannelCredentials()));
  v1::AssignRequest request;
  request.set_name("w");
  request.mutable_value()->set_dtype(v1::DT_FLOAT);
  request.mutable_value()->mutable_shape()->add_dims(2);
  request.mutable_value()->set_content(std::string(7, 'x'));
  grpc::ClientContext context;
  v1::UpdateResponse response;
  grpc::Status status = stub->Assign(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "Tensor of shape (2,) and dtype float32 needs 8 bytes, but 7 were "
            "sent");
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_EQ(read.version, 1);
}

TEST_F(VariableOpsTest, ExpectedVersionMismatchIsAbortedAndChangesNothing) {
  VS_ASSERT_OK(Create("w", {1}).status());
  VS_ASSERT_OK(
      client_->Assign("w", Floats({1}, {5}), {.expected_version = 1}).status());
  EXPECT_THAT(client_->Assign("w", Floats({1}, {6}), {.expected_version = 1}),
              StatusIs(absl::StatusCode::kAborted,
                       "Variable w is at version 2, not the expected version "
                       "1"));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("w"));
  EXPECT_THAT(read.value.flat<float>(), ElementsAre(5));
}

TEST_F(VariableOpsTest, BoolVariablesCannotBeAddedTo) {
  VS_ASSERT_OK(Create("b", {1}, v1::DT_BOOL).status());
  EXPECT_THAT(client_->AssignAdd("b", Tensor(v1::DT_BOOL, {1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Cannot add to variable b of dtype bool"));
}

TEST_F(VariableOpsTest, MissingVariableIsNotFoundWithSimilarNames) {
  VS_ASSERT_OK(Create("scope/kernel", {1}).status());
  EXPECT_THAT(client_->Read("kernel"),
              StatusIs(absl::StatusCode::kNotFound,
                       "Variable kernel does not exist. Variables named "
                       "'kernel' exist at: scope/kernel"));
  EXPECT_THAT(
      client_->Assign("nope", Floats({1}, {1})),
      StatusIs(absl::StatusCode::kNotFound, "Variable nope does not exist."));
}

TEST_F(VariableOpsTest, EveryDtypeRoundTripsAndAdds) {
  for (DType dtype : kAllDTypes) {
    SCOPED_TRACE(DTypeName(dtype));
    const std::string name = absl::StrCat("v_", DTypeName(dtype));
    VS_ASSERT_OK(Create(name, {4}, dtype).status());
    Tensor value(dtype, {4});
    VisitDType(dtype, [&](auto t) {
      using T = decltype(t);
      auto flat = value.mutable_flat<T>();
      for (int i = 0; i < 4; ++i) flat[i] = FromDouble<T>(i % 2 == 0 ? 1 : 0);
    });
    const std::string bytes = value.bytes();
    VS_ASSERT_OK(client_->Assign(name, std::move(value)).status());
    VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read(name));
    EXPECT_EQ(read.value.dtype(), dtype);
    EXPECT_EQ(read.value.bytes(), bytes);
    if (dtype == v1::DT_BOOL) continue;
    Tensor copy = read.value;
    VS_ASSERT_OK_AND_ASSIGN(
        UpdateResult sum,
        client_->AssignAdd(name, std::move(copy), {.return_value = true}));
    ASSERT_TRUE(sum.value.has_value());
    const Tensor& summed = *sum.value;
    VisitDType(dtype, [&](auto t) {
      using T = decltype(t);
      for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(ToDouble(summed.flat<T>()[i]), i % 2 == 0 ? 2 : 0);
      }
    });
  }
}

TEST_F(VariableOpsTest, HalfPrecisionAddsInFloatAndRounds) {
  VS_ASSERT_OK(Create("h", {2}, v1::DT_HALF).status());
  Tensor delta(v1::DT_HALF, {2});
  delta.mutable_flat<Half>()[0] = FromDouble<Half>(1.5);
  delta.mutable_flat<Half>()[1] = FromDouble<Half>(2049);  // rounds to 2048
  VS_ASSERT_OK_AND_ASSIGN(
      UpdateResult r, client_->AssignAdd("h", delta, {.return_value = true}));
  EXPECT_EQ(ToDouble(r.value->flat<Half>()[0]), 1.5);
  EXPECT_EQ(ToDouble(r.value->flat<Half>()[1]), 2048);
}

TEST_F(VariableOpsTest, IntegerAdditionWrapsAround) {
  VS_ASSERT_OK(Create("i", {1}, v1::DT_INT32).status());
  const int32_t max = std::numeric_limits<int32_t>::max();
  VS_ASSERT_OK(client_
                   ->Assign("i", Tensor::FromVector<int32_t>(v1::DT_INT32, {1},
                                                             {&max, 1}))
                   .status());
  const int32_t one = 1;
  VS_ASSERT_OK_AND_ASSIGN(
      UpdateResult r,
      client_->AssignAdd(
          "i", Tensor::FromVector<int32_t>(v1::DT_INT32, {1}, {&one, 1}),
          {.return_value = true}));
  EXPECT_EQ(r.value->flat<int32_t>()[0], std::numeric_limits<int32_t>::min());
}

TEST_F(VariableOpsTest, ConcurrentAssignAddsAreAllApplied) {
  VS_ASSERT_OK(Create("counter", {}, v1::DT_INT64).status());
  constexpr int kThreads = 8, kAdds = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::shared_ptr<Client> client = server_.NewClient();
      const int64_t one = 1;
      for (int i = 0; i < kAdds; ++i) {
        ASSERT_TRUE(client
                        ->AssignAdd("counter", Tensor::FromVector<int64_t>(
                                                   v1::DT_INT64, {}, {&one, 1}))
                        .ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  VS_ASSERT_OK_AND_ASSIGN(ReadResult read, client_->Read("counter"));
  EXPECT_EQ(read.value.flat<int64_t>()[0], kThreads * kAdds);
  EXPECT_EQ(read.version, 1 + kThreads * kAdds);
}

TEST_F(VariableOpsTest, ListShowsChildrenOrEverythingInPages) {
  for (const char* name : {"a", "a-x", "a/b", "a/c/d", "a/c/e", "a0", "b/x"}) {
    VS_ASSERT_OK(Create(name, {1}).status());
  }
  for (int page_size : {1, 2, 1000}) {
    SCOPED_TRACE(page_size);
    EXPECT_THAT(ListNames(*client_, "", false, page_size),
                ElementsAre("a", "a-x", "a/", "a0", "b/"));
    EXPECT_THAT(ListNames(*client_, "a", false, page_size),
                ElementsAre("a/b", "a/c/"));
    EXPECT_THAT(ListNames(*client_, "a", true, page_size),
                ElementsAre("a/b", "a/c/d", "a/c/e"));
    EXPECT_THAT(ListNames(*client_, "", true, page_size),
                ElementsAre("a", "a-x", "a/b", "a/c/d", "a/c/e", "a0", "b/x"));
  }
  v1::ListVariablesRequest bad;
  bad.set_page_size(100000);
  EXPECT_THAT(client_->ListVariables(bad),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "page_size must be between 0 and 10000, not 100000"));
}

TEST_F(VariableOpsTest, DeleteRemovesOneVariableOrAWholeScope) {
  for (const char* name : {"m/a", "m/b/c", "m2", "m"}) {
    VS_ASSERT_OK(Create(name, {1}).status());
  }
  EXPECT_THAT(client_->Delete("m", /*recursive=*/false), 1);
  EXPECT_THAT(client_->Delete("m", /*recursive=*/false),
              StatusIs(absl::StatusCode::kNotFound));
  VS_ASSERT_OK_AND_ASSIGN(int64_t deleted, client_->Delete("m", true));
  EXPECT_EQ(deleted, 2);
  EXPECT_THAT(ListNames(*client_, "", true, 0), ElementsAre("m2"));
  EXPECT_THAT(client_->Delete("m", true),
              StatusIs(absl::StatusCode::kNotFound,
                       ::testing::StartsWith("Nothing named m or under m/ "
                                             "exists.")));
  // The name is free again, and survives a restart as new.
  VS_ASSERT_OK_AND_ASSIGN(Variable again, Create("m/a", {2}));
  EXPECT_TRUE(again.created());
  EXPECT_EQ(again.version(), 1);
  VS_ASSERT_OK(server_.Restart());
  client_ = server_.NewClient();
  EXPECT_THAT(ListNames(*client_, "", true, 0), ElementsAre("m/a", "m2"));
}

TEST_F(VariableOpsTest, RenameMovesAVariableOrAWholeScopeAtomically) {
  for (const char* name : {"old/a", "old/b/c", "old", "older", "keep"}) {
    VS_ASSERT_OK(Create(name, {1}).status());
  }
  VS_ASSERT_OK(client_->Assign("old/b/c", Floats({1}, {7})).status());
  VariableScope scope;
  GetVariableOptions parted;
  parted.shape = std::vector<int64_t>{4};
  parted.partitioner = v1::Partitioner();
  parted.partitioner->mutable_fixed_size()->set_num_shards(2);
  VS_ASSERT_OK(GetVariable(client_, scope, "old/emb", parted).status());

  EXPECT_THAT(client_->Rename("old", "new"), 5);
  EXPECT_THAT(ListNames(*client_, "", true, 0),
              ElementsAre("keep", "new", "new/a", "new/b/c", "new/emb/part_0",
                          "new/emb/part_1", "older"));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult moved, client_->Read("new/b/c"));
  EXPECT_THAT(moved.value.flat<float>(), ElementsAre(7));
  EXPECT_EQ(moved.version, 2);
  // The partitioned variable moved as a whole.
  scope.reuse = Reuse::kTrue;
  VS_ASSERT_OK_AND_ASSIGN(Variable emb, GetVariable(client_, scope, "new/emb",
                                                    GetVariableOptions()));
  EXPECT_TRUE(emb.partitioned());
  VS_ASSERT_OK(server_.Restart());
  client_ = server_.NewClient();
  EXPECT_THAT(
      ListNames(*client_, "new", true, 0),
      ElementsAre("new/a", "new/b/c", "new/emb/part_0", "new/emb/part_1"));
}

TEST_F(VariableOpsTest, RenameRefusesTakenNamesAndMovesIntoItself) {
  VS_ASSERT_OK(Create("a/x", {1}).status());
  VS_ASSERT_OK(Create("b/x", {1}).status());
  EXPECT_THAT(client_->Rename("a", "b"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "Cannot rename a/x to b/x: Variable b/x already "
                       "exists"));
  EXPECT_THAT(client_->Rename("a", "a/y"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Cannot rename a to a/y: one is the other or lies "
                       "inside it"));
  EXPECT_THAT(client_->Rename("zzz", "q"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ListNames(*client_, "", true, 0), ElementsAre("a/x", "b/x"));
}

// Creates `name` partitioned in `parts` parts of two rows of two floats.
absl::StatusOr<Variable> CreatePartitioned(std::shared_ptr<Client> client,
                                           const std::string& name,
                                           int64_t parts,
                                           Reuse reuse = Reuse::kFalse) {
  VariableScope scope;
  scope.reuse = reuse;
  GetVariableOptions options;
  options.shape = std::vector<int64_t>{2 * parts, 2};
  options.partitioner = v1::Partitioner();
  options.partitioner->mutable_fixed_size()->set_num_shards(parts);
  return GetVariable(std::move(client), scope, name, options);
}

// Issue 11: `varscope rm m/p/part_0` deleted one part, and a later AUTO_REUSE
// get_variable of m/p created it again, resetting the other parts.
TEST_F(VariableOpsTest, DeletingOrRenamingOnePartIsRefusedAndChangesNothing) {
  VS_ASSERT_OK(CreatePartitioned(client_, "m/p", 4).status());
  VS_ASSERT_OK(
      client_->Assign("m/p/part_1", Floats({2, 2}, {1, 2, 3, 4})).status());
  const std::vector<std::string> before = ListNames(*client_, "", true, 0);
  ASSERT_EQ(before.size(), 4u);

  EXPECT_THAT(client_->Delete("m/p/part_0", /*recursive=*/false),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "Variable m/p/part_0 is part 0 of the partitioned "
                       "variable m/p (4 parts); delete the whole: varscope rm "
                       "-r m/p"));
  EXPECT_THAT(client_->Delete("m/p/part_3", /*recursive=*/true),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "Variable m/p/part_3 is part 3 of the partitioned "
                       "variable m/p (4 parts); delete the whole: varscope rm "
                       "-r m/p"));
  EXPECT_THAT(client_->Rename("m/p/part_1", "m/q"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "Variable m/p/part_1 is part 1 of the partitioned "
                       "variable m/p (4 parts); rename the whole: varscope mv "
                       "m/p NEW_NAME"));
  EXPECT_EQ(ListNames(*client_, "", true, 0), before);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable again, CreatePartitioned(client_, "m/p", 4, Reuse::kAutoReuse));
  EXPECT_FALSE(again.created());
  VS_ASSERT_OK_AND_ASSIGN(ReadResult part, client_->Read("m/p/part_1"));
  EXPECT_THAT(part.value.flat<float>(), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(part.version, 2);

  // The whole, or a scope holding it, moves and goes as one.
  EXPECT_THAT(client_->Rename("m/p", "n/p"), 4);
  EXPECT_THAT(client_->Delete("n", /*recursive=*/true), 4);
  EXPECT_THAT(ListNames(*client_, "", true, 0), ElementsAre());
}

TEST_F(VariableOpsTest, OneSlotOfThePartsGoesOnlyWithTheWhole) {
  VS_ASSERT_OK(CreatePartitioned(client_, "m/p", 2).status());
  v1::BatchUpdateRequest step;
  for (const char* part : {"m/p/part_0", "m/p/part_1"}) {
    v1::Update* update = step.add_updates();
    update->set_name(part);
    v1::ApplyGradient* apply = update->mutable_apply_gradient();
    apply->mutable_optimizer()->set_learning_rate(0.1);
    apply->mutable_optimizer()->mutable_adagrad();
    TensorToProto(Floats({2, 2}, {1, 1, 1, 1}), apply->mutable_gradient());
  }
  VS_ASSERT_OK(client_->BatchUpdate(step).status());
  const std::vector<std::string> before = ListNames(*client_, "", true, 0);
  ASSERT_THAT(before, ElementsAre("m/p/part_0", "m/p/part_0/Adagrad",
                                  "m/p/part_1", "m/p/part_1/Adagrad"));

  EXPECT_THAT(client_->Delete("m/p/part_0/Adagrad", /*recursive=*/false),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "Variable m/p/part_0/Adagrad is the Adagrad slot of "
                       "part 0 of the partitioned variable m/p (2 parts); "
                       "delete the whole: varscope rm -r m/p"));
  EXPECT_THAT(client_->Rename("m/p/part_1/Adagrad", "m/p/part_1/Other"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "Variable m/p/part_1/Adagrad is the Adagrad slot of "
                       "part 1 of the partitioned variable m/p (2 parts); "
                       "rename the whole: varscope mv m/p NEW_NAME"));
  EXPECT_THAT(client_->Delete("m/p/part_1", /*recursive=*/true),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::StartsWith("Variable m/p/part_1 is part 1 "
                                             "of the partitioned variable")));
  EXPECT_EQ(ListNames(*client_, "", true, 0), before);
  EXPECT_THAT(client_->Delete("m", /*recursive=*/true), 4);
}

// A store that holds some parts only (written by a version that let one part
// go): get_variable of the whole fails in every mode and creates nothing.
TEST_F(VariableOpsTest, IncompletePartitionedVariableIsNeverCreatedAgain) {
  VS_ASSERT_OK(CreatePartitioned(client_, "m/p", 4).status());
  VS_ASSERT_OK(
      client_->Assign("m/p/part_1", Floats({2, 2}, {1, 2, 3, 4})).status());
  server_.Stop();
  {
    VS_ASSERT_OK_AND_ASSIGN(std::unique_ptr<server::Storage> storage,
                            server::Storage::Open({}, server_.data_dir()));
    server::StorageBatch batch;
    batch.DeleteVariable("m/p/part_0");
    batch.DeleteVariable("m/p/part_2");
    VS_ASSERT_OK(storage->Write(batch));
  }
  VS_ASSERT_OK(server_.Restart());
  client_ = server_.NewClient();

  const char* incomplete =
      "Partitioned variable m/p is incomplete: 2 of its 4 parts are missing "
      "(m/p/part_0, m/p/part_2); restore it from a backup, or delete what is "
      "left: varscope rm -r m/p";
  for (Reuse reuse : {Reuse::kFalse, Reuse::kTrue, Reuse::kAutoReuse}) {
    EXPECT_THAT(CreatePartitioned(client_, "m/p", 4, reuse),
                StatusIs(absl::StatusCode::kFailedPrecondition, incomplete));
    VariableScope scope;
    scope.reuse = reuse;
    GetVariableOptions unpartitioned;
    unpartitioned.shape = std::vector<int64_t>{8, 2};
    EXPECT_THAT(GetVariable(client_, scope, "m/p", unpartitioned),
                StatusIs(absl::StatusCode::kFailedPrecondition, incomplete));
  }
  EXPECT_THAT(ListNames(*client_, "", true, 0),
              ElementsAre("m/p/part_1", "m/p/part_3"));
  VS_ASSERT_OK_AND_ASSIGN(ReadResult part, client_->Read("m/p/part_1"));
  EXPECT_THAT(part.value.flat<float>(), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(part.version, 2);
  // What is left goes as a whole, then the name is free.
  EXPECT_THAT(client_->Delete("m/p/part_1", /*recursive=*/false),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(client_->Delete("m/p", /*recursive=*/true), 2);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable created,
      CreatePartitioned(client_, "m/p", 4, Reuse::kAutoReuse));
  EXPECT_TRUE(created.created());
}

TEST_F(VariableOpsTest, ServerInfoCountsVariablesBytesAndCalls) {
  VS_ASSERT_OK(Create("a", {10}).status());
  VS_ASSERT_OK(Create("b", {2}, v1::DT_DOUBLE).status());
  VS_ASSERT_OK(client_->Read("a").status());
  VS_ASSERT_OK(client_->Assign("a", Tensor(v1::DT_FLOAT, {10})).status());
  VS_ASSERT_OK_AND_ASSIGN(v1::ServerInfo info, client_->GetServerInfo());
  EXPECT_EQ(info.variable_count(), 2);
  EXPECT_EQ(info.total_bytes(), 56);
  EXPECT_EQ(info.reads(), 1);
  EXPECT_EQ(info.updates(), 1);
  EXPECT_EQ(info.gets(), 2);
  EXPECT_FALSE(info.version().empty());
  EXPECT_GT(info.start_time_micros(), 0);
}

TEST_F(VariableOpsTest, RestartBringsBackEveryVariableValueAndVersion) {
  server::ServerOptions options;
  options.table.chunk_bytes = 64;  // many chunks per variable
  TestServer server(options);
  std::shared_ptr<Client> client = server.NewClient();
  VariableScope scope;
  GetVariableOptions get;
  get.shape = std::vector<int64_t>{100, 3};
  get.partitioner = v1::Partitioner();
  get.partitioner->mutable_fixed_size()->set_num_shards(3);
  VS_ASSERT_OK_AND_ASSIGN(Variable parted,
                          GetVariable(client, scope, "emb", get));
  get.partitioner.reset();
  get.dtype = v1::DT_DOUBLE;
  VS_ASSERT_OK_AND_ASSIGN(Variable dense,
                          GetVariable(client, scope, "model/dense", get));
  Tensor ramp(v1::DT_DOUBLE, {100, 3});
  for (int i = 0; i < 300; ++i) ramp.mutable_flat<double>()[i] = i * 0.5;
  VS_ASSERT_OK(dense.Assign(ramp).status());
  VS_ASSERT_OK_AND_ASSIGN(Tensor parted_before, parted.Read());

  VS_ASSERT_OK(server.Restart());
  client = server.NewClient();
  scope.reuse = Reuse::kTrue;
  get = GetVariableOptions();
  get.dtype = v1::DT_DOUBLE;
  VS_ASSERT_OK_AND_ASSIGN(Variable dense_after,
                          GetVariable(client, scope, "model/dense", get));
  get.dtype.reset();
  EXPECT_EQ(dense_after.version(), 2);
  EXPECT_EQ(dense_after.dtype(), v1::DT_DOUBLE);
  VS_ASSERT_OK_AND_ASSIGN(Tensor dense_value, dense_after.Read());
  EXPECT_EQ(dense_value.bytes(), ramp.bytes());
  VS_ASSERT_OK_AND_ASSIGN(Variable parted_after,
                          GetVariable(client, scope, "emb", get));
  ASSERT_TRUE(parted_after.partitioned());
  VS_ASSERT_OK_AND_ASSIGN(Tensor parted_value, parted_after.Read());
  EXPECT_EQ(parted_value.bytes(), parted_before.bytes());
  EXPECT_EQ(parted_after.parts()[2].info().create_time_micros(),
            parted.parts()[2].info().create_time_micros());
}

TEST_F(VariableOpsTest, LargeVariableRoundTripsAcrossARestart) {
  // 64 MiB: many 1 MiB chunks.
  VS_ASSERT_OK_AND_ASSIGN(
      Variable big,
      Create("big", {16 << 20}, v1::DT_FLOAT, v1::Initializer::RANDOM_UNIFORM));
  VS_ASSERT_OK_AND_ASSIGN(Tensor before, big.Read());
  VS_ASSERT_OK(server_.Restart());
  VS_ASSERT_OK_AND_ASSIGN(ReadResult after, server_.NewClient()->Read("big"));
  EXPECT_EQ(after.value.bytes(), before.bytes());
}

}  // namespace
}  // namespace varscope
