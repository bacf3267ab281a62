// End-to-end: TensorFlow's get_variable semantics (DESIGN.md §1) through the
// C++ client against a real server on a free port.
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/variable_scope.h"
#include "common/names.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_call.h"
#include "tests/testing/test_server.h"

namespace varscope {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::varscope::testing::CallRaw;
using ::varscope::testing::IsOk;
using ::varscope::testing::StatusIs;
using ::varscope::testing::TestServer;

v1::Initializer Init(v1::Initializer::Kind kind) {
  v1::Initializer init;
  init.set_kind(kind);
  return init;
}

v1::Partitioner FixedSize(int64_t shards, int axis = 0) {
  v1::Partitioner p;
  p.mutable_fixed_size()->set_num_shards(shards);
  p.mutable_fixed_size()->set_axis(axis);
  return p;
}

class GetVariableTest : public ::testing::Test {
 protected:
  // get_variable(name) at the root with `reuse`.
  absl::StatusOr<Variable> Get(const std::string& name, Reuse reuse,
                               std::optional<std::vector<int64_t>> shape,
                               DType dtype = v1::DT_FLOAT,
                               GetVariableOptions options = {}) {
    VariableScope scope;
    scope.reuse = reuse;
    options.shape = std::move(shape);
    options.dtype = dtype;
    return GetVariable(client_, scope, name, options);
  }

  TestServer server_;
  std::shared_ptr<Client> client_ = server_.NewClient();
};

TEST_F(GetVariableTest, CreateOnMissingNameCreatesVersionOne) {
  VS_ASSERT_OK_AND_ASSIGN(Variable w, Get("a/b", Reuse::kFalse, {{10, 2}}));
  EXPECT_TRUE(w.created());
  EXPECT_EQ(w.name(), "a/b");
  EXPECT_THAT(w.shape(), ElementsAre(10, 2));
  EXPECT_EQ(w.dtype(), v1::DT_FLOAT);
  EXPECT_EQ(w.version(), 1);
  EXPECT_TRUE(w.trainable());
}

TEST_F(GetVariableTest, CreateOnExistingNameIsAlreadyExistsWithTfText) {
  VS_ASSERT_OK(Get("a/b", Reuse::kFalse, {{10, 2}}).status());
  EXPECT_THAT(Get("a/b", Reuse::kFalse, {{10, 2}}),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "Variable a/b already exists, disallowed. Did you mean "
                       "to set reuse=True or reuse=tf.AUTO_REUSE in "
                       "VarScope?"));
}

TEST_F(GetVariableTest, ReuseOnExistingNameReturnsItUncreated) {
  VS_ASSERT_OK(Get("a/b", Reuse::kFalse, {{10, 2}}).status());
  VS_ASSERT_OK_AND_ASSIGN(Variable w, Get("a/b", Reuse::kTrue, {{10, 2}}));
  EXPECT_FALSE(w.created());
  EXPECT_THAT(w.shape(), ElementsAre(10, 2));
}

TEST_F(GetVariableTest, ReuseOnMissingNameIsNotFoundWithTfText) {
  EXPECT_THAT(Get("a/b", Reuse::kTrue, {{10, 2}}),
              StatusIs(absl::StatusCode::kNotFound,
                       "Variable a/b does not exist, or was not created with "
                       "tf.get_variable(). Did you mean to set "
                       "reuse=tf.AUTO_REUSE in VarScope?"));
}

TEST_F(GetVariableTest, ReuseOnMissingNameNamesTheSameLeafInOtherScopes) {
  VS_ASSERT_OK(
      Get("model/my_scope/weights", Reuse::kFalse, {{10, 1}}).status());
  VS_ASSERT_OK(Get("other/weights", Reuse::kFalse, {{3}}).status());
  EXPECT_THAT(
      Get("my_scope/weights", Reuse::kTrue, {{10, 1}}),
      StatusIs(absl::StatusCode::kNotFound,
               "Variable my_scope/weights does not exist, or was not created "
               "with tf.get_variable(). Did you mean to set "
               "reuse=tf.AUTO_REUSE in VarScope? Variables named 'weights' "
               "exist at: model/my_scope/weights, other/weights"));
}

TEST_F(GetVariableTest, ReuseOnMissingNameListsCloseSpellings) {
  VS_ASSERT_OK(Get("layer1/kernel", Reuse::kFalse, {{2}}).status());
  EXPECT_THAT(Get("layer1/kernal", Reuse::kTrue, {{2}}),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("in VarScope? Similar names: layer1/kernel")));
}

TEST_F(GetVariableTest, NearMatchesNameAPartitionedVariableOnce) {
  GetVariableOptions partitioned;
  partitioned.partitioner = FixedSize(3);
  VS_ASSERT_OK(Get("a/emb", Reuse::kFalse, {{6, 2}}, v1::DT_FLOAT, partitioned)
                   .status());
  EXPECT_THAT(client_->Read("b/emb"),
              StatusIs(absl::StatusCode::kNotFound,
                       "Variable b/emb does not exist. Variables named 'emb' "
                       "exist at: a/emb"));
}

TEST_F(GetVariableTest, AutoReuseCreatesOnceThenReturnsTheSameVariable) {
  VS_ASSERT_OK_AND_ASSIGN(Variable a, Get("s/v", Reuse::kAutoReuse, {{4}}));
  VS_ASSERT_OK_AND_ASSIGN(Variable b, Get("s/v", Reuse::kAutoReuse, {{4}}));
  EXPECT_TRUE(a.created());
  EXPECT_FALSE(b.created());
  VS_ASSERT_OK_AND_ASSIGN(Tensor va, a.Read());
  VS_ASSERT_OK_AND_ASSIGN(Tensor vb, b.Read());
  EXPECT_EQ(va.bytes(), vb.bytes());
}

TEST_F(GetVariableTest, ShapeMismatchOnReuseUsesTfText) {
  VS_ASSERT_OK(Get("a/b", Reuse::kFalse, {{10, 1}}).status());
  EXPECT_THAT(Get("a/b", Reuse::kAutoReuse, {{10, 2}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to share variable a/b, but specified shape "
                       "(10, 2) and found shape (10, 1)."));
  EXPECT_THAT(Get("a/b", Reuse::kTrue, {{10}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to share variable a/b, but specified shape "
                       "(10,) and found shape (10, 1)."));
}

TEST_F(GetVariableTest, UnknownDimensionsAndNoShapeMatchOnReuse) {
  VS_ASSERT_OK(Get("a/b", Reuse::kFalse, {{10, 1}}).status());
  VS_EXPECT_OK(Get("a/b", Reuse::kTrue, {{-1, 1}}).status());
  VS_EXPECT_OK(Get("a/b", Reuse::kTrue, {{-1, -1}}).status());
  VS_EXPECT_OK(Get("a/b", Reuse::kTrue, std::nullopt).status());
  EXPECT_THAT(Get("a/b", Reuse::kTrue, {{-1, 2}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to share variable a/b, but specified shape "
                       "(None, 2) and found shape (10, 1)."));
}

TEST_F(GetVariableTest, DtypeMismatchOnReuseUsesTfText) {
  VS_ASSERT_OK(Get("a/b", Reuse::kFalse, {{2}}, v1::DT_FLOAT).status());
  EXPECT_THAT(Get("a/b", Reuse::kTrue, {{2}}, v1::DT_DOUBLE),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to share variable a/b, but specified dtype "
                       "float64 and found dtype float32."));
}

TEST_F(GetVariableTest, NewVariableNeedsAFullyDefinedShape) {
  EXPECT_THAT(Get("a/b", Reuse::kAutoReuse, {{-1, 2}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Shape of a new variable (a/b) must be fully defined, "
                       "but instead was (None, 2)."));
  EXPECT_THAT(Get("a/b", Reuse::kFalse, std::nullopt),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Shape of a new variable (a/b) must be fully defined, "
                       "but instead was <unknown>."));
}

TEST_F(GetVariableTest, ScalarVariablesWork) {
  VS_ASSERT_OK_AND_ASSIGN(Variable s, Get("s", Reuse::kFalse, {{}}));
  EXPECT_TRUE(s.shape().empty());
  EXPECT_THAT(Get("s", Reuse::kTrue, {{1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to share variable s, but specified shape (1,) "
                       "and found shape ()."));
}

struct BadName {
  std::string name;
  std::string message;
};

class InvalidNameTest : public GetVariableTest,
                        public ::testing::WithParamInterface<BadName> {};

TEST_P(InvalidNameTest, IsInvalidArgumentNamingTheProblem) {
  EXPECT_THAT(Get(GetParam().name, Reuse::kAutoReuse, {{1}}),
              StatusIs(absl::StatusCode::kInvalidArgument, GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Names, InvalidNameTest,
    ::testing::Values(
        BadName{"", "Invalid variable name '': empty name"},
        BadName{"a b",
                "Invalid variable name 'a b': character ' ' at position 1 is "
                "not allowed (names match [A-Za-z0-9.][A-Za-z0-9_.\\-/]*)"},
        BadName{"_a",
                "Invalid variable name '_a': character '_' at position 0 is "
                "not allowed (names match [A-Za-z0-9.][A-Za-z0-9_.\\-/]*)"},
        BadName{"a//b",
                "Invalid variable name 'a//b': empty scope segment at "
                "position 2"},
        BadName{"/a",
                "Invalid variable name '/a': empty scope segment at position "
                "0"},
        BadName{"a/",
                "Invalid variable name 'a/': empty scope segment at position "
                "2"},
        BadName{"a:0",
                "Invalid variable name 'a:0': character ':' at position 1 is "
                "not allowed (names match [A-Za-z0-9.][A-Za-z0-9_.\\-/]*)"},
        BadName{std::string("a\0b", 3),
                "Invalid variable name 'a\\x00b': character '\\x00' at "
                "position 1 is not allowed (names match "
                "[A-Za-z0-9.][A-Za-z0-9_.\\-/]*)"}));

TEST_F(GetVariableTest, OverlongNameIsInvalidArgument) {
  EXPECT_THAT(Get(std::string(1025, 'a'), Reuse::kAutoReuse, {{1}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("1025 characters, more than the limit of "
                                 "1024")));
}

TEST_F(GetVariableTest, BadShapesAreInvalidArgument) {
  EXPECT_THAT(Get("a", Reuse::kAutoReuse, {{3, -2}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid shape (3, None): dimension 1 is -2; dimensions "
                       "must be >= -1 (-1 is unknown)"));
  EXPECT_THAT(
      Get("a", Reuse::kAutoReuse, {{int64_t{1} << 40, int64_t{1} << 40}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "Shape (1099511627776, 1099511627776) has more than 2^50 "
               "elements"));
}

TEST_F(GetVariableTest, UnknownDtypeAndModeAreInvalidArgument) {
  v1::GetVariableRequest request;
  request.set_name("a");
  request.set_mode(v1::AUTO_REUSE);
  request.set_dtype(static_cast<v1::DataType>(42));
  request.mutable_shape()->add_dims(1);
  EXPECT_THAT(client_->GetVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown data type 42 in field dtype"));
  request.set_dtype(v1::DT_FLOAT);
  request.set_mode(v1::REUSE_MODE_UNSPECIFIED);
  EXPECT_THAT(client_->GetVariable(request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Unknown reuse mode 0 for variable a; expected CREATE, "
                       "REUSE or AUTO_REUSE"));
}

TEST_F(GetVariableTest, APlacementCreatesAndChecksOnlyItsParts) {
  v1::GetVariableRequest request;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(name: "emb"
           mode: AUTO_REUSE
           dtype: DT_FLOAT
           shape { dims: 6 }
           partitioner { fixed_size { num_shards: 6 } })pb",
      &request));
  const int home = ShardOf("emb", 3);
  request.mutable_placement()->set_shard_index((home + 1) % 3);
  request.mutable_placement()->set_shard_count(3);
  absl::StatusOr<v1::GetVariableResponse> placed =
      client_->GetVariable(request);
  ASSERT_THAT(placed.status(), IsOk());
  EXPECT_TRUE(placed->created());
  std::vector<std::string> names;
  for (const v1::VariableInfo& part : placed->parts()) {
    names.push_back(part.name());
  }
  EXPECT_THAT(names, ElementsAre("emb/part_1", "emb/part_4"));
  EXPECT_THAT(placed->variable().shape().dims(), ElementsAre(6));
  // Reused with its placement; incomplete without.
  absl::StatusOr<v1::GetVariableResponse> again = client_->GetVariable(request);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_FALSE(again->created());
  request.clear_placement();
  EXPECT_THAT(client_->GetVariable(request).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::StartsWith(
                           "Partitioned variable emb is incomplete: 4 of its "
                           "6 parts are missing (emb/part_0, emb/part_2, "
                           "emb/part_3, emb/part_5)")));
  request.mutable_placement()->set_shard_index(3);
  request.mutable_placement()->set_shard_count(3);
  EXPECT_THAT(client_->GetVariable(request).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The part placement of variable emb must name a "
                       "shard_index in [0, shard_count), got 3 of 3"));
}

TEST(GetVariableLimits, VariableOverTheSizeLimitIsResourceExhausted) {
  server::ServerOptions options;
  options.table.max_variable_bytes = 1000;
  TestServer server(options);
  VariableScope scope;
  GetVariableOptions get;
  get.shape = std::vector<int64_t>{251};
  EXPECT_THAT(
      GetVariable(server.NewClient(), scope, "big", get),
      StatusIs(absl::StatusCode::kResourceExhausted,
               "Variable big of shape (251,) and dtype float32 needs 1004 "
               "bytes, over this server's limit of 1000 "
               "(--max-variable-bytes)"));
  get.shape = std::vector<int64_t>{250};
  VS_EXPECT_OK(GetVariable(server.NewClient(), scope, "big", get).status());
}

// Found by tests/fuzz/table_fuzz: a variable with no rows but rows of 2^80
// elements (their size overflowed) crashed the server on a sparse update.
TEST(GetVariableLimits, RowsOverTheSizeLimitAreResourceExhaustedWithNoRows) {
  server::ServerOptions options;
  options.table.max_variable_bytes = 1000;
  TestServer server(options);
  VariableScope scope;
  GetVariableOptions get;
  get.shape = std::vector<int64_t>{0, 251};
  EXPECT_THAT(GetVariable(server.NewClient(), scope, "empty", get),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "Variable empty of shape (0, 251) and dtype float32 has "
                       "rows of shape (251,), over this server's limit of "
                       "1000 (--max-variable-bytes)"));
  const int64_t huge = int64_t{1} << 40;
  get.shape = std::vector<int64_t>{0, huge, huge};
  EXPECT_THAT(GetVariable(server.NewClient(), scope, "empty", get),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("has rows of shape (1099511627776, "
                                 "1099511627776), over this")));
  get.shape = std::vector<int64_t>{0, 250};
  VS_EXPECT_OK(GetVariable(server.NewClient(), scope, "empty", get).status());
}

TEST_F(GetVariableTest, DefaultInitializersFollowTensorFlow) {
  VS_ASSERT_OK_AND_ASSIGN(Variable f, Get("f", Reuse::kFalse, {{20, 30}}));
  VS_ASSERT_OK_AND_ASSIGN(Tensor fv, f.Read());
  // glorot_uniform: |x| <= sqrt(6 / (fan_in + fan_out)), not all zero.
  const float limit = std::sqrt(6.0f / 50.0f);
  bool any_nonzero = false;
  for (float x : fv.flat<float>()) {
    EXPECT_LE(std::abs(x), limit);
    any_nonzero |= x != 0;
  }
  EXPECT_TRUE(any_nonzero);
  EXPECT_EQ(f.info().initializer().kind(), v1::Initializer::GLOROT_UNIFORM);
  for (DType dtype : {v1::DT_INT32, v1::DT_INT64, v1::DT_BOOL}) {
    const std::string name = absl::StrCat("i", static_cast<int>(dtype));
    VS_ASSERT_OK_AND_ASSIGN(Variable v, Get(name, Reuse::kFalse, {{5}}, dtype));
    VS_ASSERT_OK_AND_ASSIGN(Tensor value, v.Read());
    EXPECT_EQ(value.bytes(), std::string(value.bytes().size(), '\0'));
    EXPECT_EQ(v.info().initializer().kind(), v1::Initializer::ZEROS);
  }
}

TEST_F(GetVariableTest, SameSeedGivesSameValuesWhoeverCreates) {
  GetVariableOptions options;
  options.initializer = Init(v1::Initializer::RANDOM_NORMAL);
  options.initializer->set_seed(7);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable a, Get("a", Reuse::kFalse, {{100}}, v1::DT_FLOAT, options));
  TestServer other;
  VariableScope scope;
  options.shape = std::vector<int64_t>{100};
  VS_ASSERT_OK_AND_ASSIGN(Variable b,
                          GetVariable(other.NewClient(), scope, "b", options));
  VS_ASSERT_OK_AND_ASSIGN(Tensor va, a.Read());
  VS_ASSERT_OK_AND_ASSIGN(Tensor vb, b.Read());
  EXPECT_EQ(va.bytes(), vb.bytes());
  EXPECT_EQ(a.info().initializer().seed(), 7);
}

TEST_F(GetVariableTest, InitializerSeedIsRecordedWhenTheServerPicksIt) {
  GetVariableOptions options;
  options.initializer = Init(v1::Initializer::RANDOM_UNIFORM);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable a, Get("a", Reuse::kFalse, {{8}}, v1::DT_FLOAT, options));
  EXPECT_TRUE(a.info().initializer().has_seed());
}

TEST_F(GetVariableTest, BadInitializerIsInvalidArgumentAndCreatesNothing) {
  GetVariableOptions options;
  options.initializer = Init(v1::Initializer::IDENTITY);
  EXPECT_THAT(Get("a", Reuse::kFalse, {{2, 2, 2}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Get("a", Reuse::kTrue, {{2, 2, 2}}),
              StatusIs(absl::StatusCode::kNotFound));
}

// Partitioned variables.

TEST_F(GetVariableTest, PartitionedVariableSplitsFirstRowsLonger) {
  GetVariableOptions options;
  options.partitioner = FixedSize(3);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable w, Get("emb", Reuse::kFalse, {{10, 4}}, v1::DT_FLOAT, options));
  ASSERT_TRUE(w.partitioned());
  EXPECT_TRUE(w.created());
  EXPECT_EQ(w.name(), "emb");
  EXPECT_THAT(w.shape(), ElementsAre(10, 4));
  EXPECT_THAT(w.partitions(), ElementsAre(3, 1));
  ASSERT_EQ(w.parts().size(), 3u);
  const int64_t rows[] = {4, 3, 3}, offsets[] = {0, 4, 7};
  for (int i = 0; i < 3; ++i) {
    const Variable& part = w.parts()[i];
    EXPECT_EQ(part.name(), absl::StrCat("emb/part_", i));
    EXPECT_THAT(part.shape(), ElementsAre(rows[i], 4));
    EXPECT_EQ(part.info().slice().full_name(), "emb");
    EXPECT_THAT(part.info().slice().var_offset(), ElementsAre(offsets[i], 0));
    EXPECT_THAT(part.info().slice().full_shape().dims(), ElementsAre(10, 4));
  }
}

TEST_F(GetVariableTest, PartitionedVariableReadsAndWritesAsAWhole) {
  GetVariableOptions options;
  options.partitioner = FixedSize(3, 1);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable w, Get("w", Reuse::kFalse, {{2, 5}}, v1::DT_INT32, options));
  std::vector<int32_t> values = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  VS_ASSERT_OK(
      w.Assign(Tensor::FromVector<int32_t>(v1::DT_INT32, {2, 5}, values))
          .status());
  VS_ASSERT_OK_AND_ASSIGN(Tensor whole, w.Read());
  EXPECT_THAT(whole.flat<int32_t>(), ::testing::ElementsAreArray(values));
  VS_ASSERT_OK_AND_ASSIGN(Tensor part1, w.parts()[1].Read());
  EXPECT_THAT(part1.flat<int32_t>(), ElementsAre(2, 3, 7, 8));
  VS_ASSERT_OK_AND_ASSIGN(
      UpdateResult added,
      w.AssignAdd(Tensor::FromVector<int32_t>(v1::DT_INT32, {2, 5}, values),
                  {.return_value = true}));
  EXPECT_THAT(added.value->flat<int32_t>(),
              ElementsAre(0, 2, 4, 6, 8, 10, 12, 14, 16, 18));
}

TEST_F(GetVariableTest, PartitionedVariableIsTheUnpartitionedValueSliced) {
  GetVariableOptions options;
  options.initializer = Init(v1::Initializer::TRUNCATED_NORMAL);
  options.initializer->set_seed(3);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable whole, Get("a", Reuse::kFalse, {{7, 3}}, v1::DT_FLOAT, options));
  options.partitioner = FixedSize(2);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable parts, Get("b", Reuse::kFalse, {{7, 3}}, v1::DT_FLOAT, options));
  VS_ASSERT_OK_AND_ASSIGN(Tensor a, whole.Read());
  VS_ASSERT_OK_AND_ASSIGN(Tensor b, parts.Read());
  EXPECT_EQ(a.bytes(), b.bytes());
}

TEST_F(GetVariableTest, PartitionedReuseFollowsTensorFlow) {
  GetVariableOptions options;
  options.partitioner = FixedSize(2);
  VS_ASSERT_OK(
      Get("p", Reuse::kFalse, {{6, 2}}, v1::DT_FLOAT, options).status());
  EXPECT_THAT(Get("p", Reuse::kFalse, {{6, 2}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "Partitioned variable with name p already exists. Did "
                       "you mean to set reuse=True or reuse=tf.AUTO_REUSE in "
                       "VarScope?"));
  // reuse=True without a partitioner finds it, even without a shape.
  VS_ASSERT_OK_AND_ASSIGN(Variable again, Get("p", Reuse::kTrue, std::nullopt));
  EXPECT_TRUE(again.partitioned());
  EXPECT_FALSE(again.created());
  // AUTO_REUSE without a partitioner does not (as in TensorFlow).
  EXPECT_THAT(Get("p", Reuse::kAutoReuse, {{6, 2}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "No partitioner was provided, but a partitioned "
                       "version of the variable was found: p/part_0. Perhaps "
                       "a variable of the same name was already created with "
                       "partitioning?"));
  options.partitioner = FixedSize(3);
  EXPECT_THAT(Get("p", Reuse::kAutoReuse, {{6, 2}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to reuse partitioned variable p, but specified "
                       "partitions [3, 1] and found partitions [2, 1]."));
  options.partitioner = FixedSize(2);
  EXPECT_THAT(Get("p", Reuse::kTrue, {{6, 3}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to reuse partitioned variable p, but specified "
                       "shape (6, 3) and found shape (6, 2)."));
  EXPECT_THAT(Get("p", Reuse::kTrue, {{6, 2}}, v1::DT_DOUBLE, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Trying to reuse partitioned variable p, but specified "
                       "dtype float64 and found dtype float32."));
}

TEST_F(GetVariableTest, PartitionedErrorsUseTensorFlowTexts) {
  GetVariableOptions options;
  options.partitioner = FixedSize(2);
  EXPECT_THAT(Get("q", Reuse::kTrue, {{6, 2}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kNotFound,
                       "PartitionedVariable q does not exist, or was not "
                       "created with tf.get_variable(). Did you mean to set "
                       "reuse=False or reuse=tf.AUTO_REUSE in VarScope?"));
  EXPECT_THAT(Get("q", Reuse::kFalse, {{-1, 2}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Shape of a new partitioned variable must be fully "
                       "defined, but instead was (None, 2)."));
  VS_ASSERT_OK(Get("plain", Reuse::kFalse, {{4}}).status());
  EXPECT_THAT(Get("plain", Reuse::kAutoReuse, {{4}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A partitioner was provided, but an unpartitioned "
                       "version of the variable was found: plain.  Perhaps a "
                       "variable of the same name was already created without "
                       "partitioning?"));
  // A scalar ignores the partitioner, as in TensorFlow.
  VS_ASSERT_OK_AND_ASSIGN(
      Variable s, Get("scalar", Reuse::kFalse, {{}}, v1::DT_FLOAT, options));
  EXPECT_FALSE(s.partitioned());
}

// Concurrency.

TEST_F(GetVariableTest, RacingAutoReuseFromEightThreadsCreatesOnce) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 5; ++round) {
    const std::string name = absl::StrCat("race/v", round);
    std::vector<absl::StatusOr<Variable>> results(kThreads,
                                                  absl::UnknownError(""));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        VariableScope scope;
        scope.reuse = Reuse::kAutoReuse;
        GetVariableOptions options;
        options.shape = std::vector<int64_t>{64, 8};
        results[t] = GetVariable(server_.NewClient(), scope, name, options);
      });
    }
    for (std::thread& t : threads) t.join();
    int created = 0;
    std::string first;
    for (auto& r : results) {
      ASSERT_TRUE(r.ok()) << r.status();
      created += r->created();
      VS_ASSERT_OK_AND_ASSIGN(Tensor value, r->Read());
      if (first.empty()) first = value.bytes();
      EXPECT_EQ(value.bytes(), first);
    }
    EXPECT_EQ(created, 1) << name;
  }
}

TEST_F(GetVariableTest, HealthServiceReportsServing) {
  // HealthCheckRequest{service: ""} is the empty message.
  std::vector<std::string> replies;
  const grpc::Status status =
      CallRaw(server_.address(), "/grpc.health.v1.Health/Check", "", &replies);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(replies, ElementsAre(std::string("\x08\x01", 2)));  // SERVING
}

TEST_F(GetVariableTest, CollectionsAreStoredOnEveryPartAndKeptAcrossRestarts) {
  GetVariableOptions options;
  options.collections = std::vector<std::string>{"variables", "my_vars"};
  options.partitioner = FixedSize(2);
  VS_ASSERT_OK_AND_ASSIGN(
      Variable e, Get("e", Reuse::kFalse, {{4, 1}}, v1::DT_FLOAT, options));
  EXPECT_THAT(e.info().collections().names(),
              ElementsAre("variables", "my_vars"));
  ASSERT_EQ(e.parts().size(), 2);
  for (const Variable& part : e.parts()) {
    EXPECT_THAT(part.info().collections().names(),
                ElementsAre("variables", "my_vars"));
  }
  VS_ASSERT_OK_AND_ASSIGN(Variable plain, Get("plain", Reuse::kFalse, {{1}}));
  EXPECT_FALSE(plain.info().has_collections());  // the default

  VS_ASSERT_OK(server_.Restart());
  client_ = server_.NewClient();
  // A get of an existing variable ignores the collections it is given, as
  // TensorFlow does.
  options.collections = std::vector<std::string>{"other"};
  options.partitioner.reset();
  VS_ASSERT_OK_AND_ASSIGN(
      Variable again, Get("e", Reuse::kTrue, {{4, 1}}, v1::DT_FLOAT, options));
  EXPECT_FALSE(again.created());
  EXPECT_THAT(again.info().collections().names(),
              ElementsAre("variables", "my_vars"));
  v1::ListVariablesRequest list;
  list.set_recursive(true);
  VS_ASSERT_OK_AND_ASSIGN(v1::ListVariablesResponse listed,
                          client_->ListVariables(list));
  ASSERT_EQ(listed.entries_size(), 3);
  EXPECT_THAT(listed.entries(0).variable().collections().names(),
              ElementsAre("variables", "my_vars"));
  EXPECT_FALSE(listed.entries(2).variable().has_collections());
}

TEST_F(GetVariableTest, BadCollectionsAreInvalidArgumentAndCreateNothing) {
  GetVariableOptions options;
  options.collections = std::vector<std::string>(65, "c");
  EXPECT_THAT(Get("w", Reuse::kAutoReuse, {{1}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Variable w is given 65 collections; at most 64 are "
                       "allowed"));
  options.collections = std::vector<std::string>{"ok", std::string(257, 'x')};
  EXPECT_THAT(Get("w", Reuse::kAutoReuse, {{1}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Collection names of variable w must have 1 to 256 "
                       "bytes, got one of 257"));
  options.collections = std::vector<std::string>{""};
  EXPECT_THAT(Get("w", Reuse::kAutoReuse, {{1}}, v1::DT_FLOAT, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Collection names of variable w must have 1 to 256 "
                       "bytes, got one of 0"));
  EXPECT_THAT(Get("w", Reuse::kTrue, {{1}}),
              StatusIs(absl::StatusCode::kNotFound));
  options.collections = std::vector<std::string>(64, std::string(256, 'c'));
  VS_EXPECT_OK(Get("w", Reuse::kFalse, {{1}}, v1::DT_FLOAT, options).status());
}

}  // namespace
}  // namespace varscope
