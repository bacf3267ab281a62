// show, get and diagnose against a real server.
#include "client/cli/inspect.h"

#include <cmath>
#include <limits>
#include <regex>

#include "client/cli/values.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

// Replaces ISO 8601 times (they change from run to run) with <time>.
std::string MaskTimes(const std::string& text) {
  static const std::regex kTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  return std::regex_replace(text, kTime, "<time>");
}

class InspectTest : public CliTest {
 protected:
  void SetUp() override { Populate(); }
};

TEST_F(InspectTest, ShowPrintsMetadataStatisticsHistogramAndFirstValues) {
  const CliResult r = Run({"show", "model/dense/kernel"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(MaskTimes(r.out),
            "name         model/dense/kernel\n"
            "kind         variable\n"
            "dtype        float32\n"
            "shape        (3, 2)\n"
            "elements     6\n"
            "bytes        24 B (24)\n"
            "version      2\n"
            "trainable    true\n"
            "initializer  zeros(seed=7)\n"
            "created      <time>\n"
            "updated      <time>\n"
            "\n"
            "statistics (over the 6 finite values)\n"
            "  min        1\n"
            "  max        6\n"
            "  mean       3.5\n"
            "  std        1.70783\n"
            "  l2 norm    9.53939\n"
            "  zeros      0.0% (0 of 6)\n"
            "  nan        0.0% (0 of 6)\n"
            "  inf        0.0% (0 of 6)\n"
            "\n"
            "histogram\n"
            "  [1, 1.5) ############################## 1\n"
            "  [1.5, 2)                                0\n"
            "  [2, 2.5) ############################## 1\n"
            "  [2.5, 3)                                0\n"
            "  [3, 3.5) ############################## 1\n"
            "  [3.5, 4)                                0\n"
            "  [4, 4.5) ############################## 1\n"
            "  [4.5, 5)                                0\n"
            "  [5, 5.5) ############################## 1\n"
            "  [5.5, 6] ############################## 1\n"
            "\n"
            "values (first 6 of 6)\n"
            "[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\n");
}

TEST_F(InspectTest, ShowListsTheCollectionsAVariableWasCreatedIn) {
  v1::GetVariableRequest request;
  request.set_name("tagged");
  request.set_mode(v1::CREATE);
  request.set_dtype(v1::DT_FLOAT);
  request.mutable_shape()->add_dims(1);
  request.mutable_collections()->add_names("variables");
  request.mutable_collections()->add_names("my_vars");
  ASSERT_TRUE(client_->GetVariable(request).ok());
  const CliResult r = Run({"show", "tagged"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("trainable    true\n"
                               "collections  variables, my_vars\n"
                               "initializer  "));
  const CliResult j = Run({"--json", "show", "tagged"});
  EXPECT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(Json::parse(j.out)["collections"],
            Json::array({"variables", "my_vars"}));
}

TEST_F(InspectTest, ShowOfAPartitionedVariableListsItsParts) {
  const CliResult r = Run({"show", "model/emb"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("kind         partitioned variable of 2 parts\n"
                               "dtype        float32\n"
                               "shape        (4, 2)\n"
                               "elements     8\n"
                               "bytes        32 B (32)\n"));
  EXPECT_THAT(r.out,
              HasSubstr("parts (partitions [2, 1])\n"
                        "  model/emb/part_0  shape (2, 2)  offset [0, 0]  "
                        "version 2  16 B\n"
                        "  model/emb/part_1  shape (2, 2)  offset [2, 0]  "
                        "version 2  16 B\n"));
  EXPECT_THAT(r.out, HasSubstr("[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]\n"));
  const Json j = Json::parse(Run({"--json", "show", "model/emb"}).out);
  EXPECT_EQ(j["kind"], "partitioned");
  EXPECT_EQ(j["partitions"], Json::array({2, 1}));
  ASSERT_EQ(j["parts"].size(), 2u);
  EXPECT_EQ(j["parts"][1]["name"], "model/emb/part_1");
  EXPECT_EQ(j["parts"][1]["slice"]["offset"], Json::array({2, 0}));
  EXPECT_EQ(j["bytes"], 32);
}

TEST_F(InspectTest, ShowOfAPartPrintsItsSlice) {
  const CliResult r = Run({"show", "model/emb/part_1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(
      r.out,
      HasSubstr("kind         part 1 of partitioned variable model/emb\n"));
  EXPECT_THAT(r.out, HasSubstr("slice        offset [2, 0] in full shape "
                               "(4, 2), partitions [2, 1]\n"));
  EXPECT_THAT(r.out, HasSubstr("[5.0, 6.0, 7.0, 8.0]\n"));
}

TEST_F(InspectTest, ShowCountsZerosNanAndInfApartFromTheMoments) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Put("odd", Floats({6}, {0, 0, nan, inf, -inf, 4}));
  const CliResult r = Run({"--json", "show", "odd"});
  EXPECT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["statistics"], Json::parse(R"({
      "elements": 6, "finite": 3, "zeros": 2, "nans": 1, "infs": 2,
      "min": 0.0, "max": 4.0, "mean": 1.3333333333333333,
      "std": 1.8856180831641267, "l2_norm": 4.0,
      "histogram": [
        {"low": 0.0, "high": 0.4, "count": 2},
        {"low": 0.4, "high": 0.8, "count": 0},
        {"low": 0.8, "high": 1.2000000000000002, "count": 0},
        {"low": 1.2000000000000002, "high": 1.6, "count": 0},
        {"low": 1.6, "high": 2.0, "count": 0},
        {"low": 2.0, "high": 2.4000000000000004, "count": 0},
        {"low": 2.4000000000000004, "high": 2.8000000000000003, "count": 0},
        {"low": 2.8000000000000003, "high": 3.2, "count": 0},
        {"low": 3.2, "high": 3.6, "count": 0},
        {"low": 3.6, "high": 4.0, "count": 1}]})"));
  EXPECT_EQ(j["first_values"],
            Json::parse(R"([0.0, 0.0, "nan", "inf", "-inf", 4.0])"));
  EXPECT_THAT(Run({"show", "odd"}).out,
              HasSubstr("  zeros      33.3% (2 of 6)\n"
                        "  nan        16.7% (1 of 6)\n"
                        "  inf        33.3% (2 of 6)\n"));
}

TEST_F(InspectTest, ShowFullPrintsEveryValue) {
  CliResult r = Run({"show", "model/my_scope/weights"});
  EXPECT_THAT(r.out, HasSubstr("values (first 10 of 10)\n"
                               "[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, "
                               "0.9]\n"));
  Put("long", Floats({12}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  r = Run({"show", "long"});
  EXPECT_THAT(r.out, HasSubstr("values (first 10 of 12)\n"
                               "[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, "
                               "10.0, ...]\n"));
  r = Run({"show", "long", "--full"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("values\n[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, "
                               "8.0, 9.0, 10.0, 11.0, 12.0]\n"));
}

TEST_F(InspectTest, ShowAndGetWorkForEveryDtype) {
  const Tensor counting = Floats({2, 2}, {0, 1, 2, 3});
  for (DType dtype : kAllDTypes) {
    SCOPED_TRACE(DTypeName(dtype));
    const std::string name = absl::StrCat("dtypes/", DTypeName(dtype));
    Put(name, Cast(counting, dtype));
    const CliResult show = Run({"--json", "show", name});
    ASSERT_EQ(show.code, 0) << show.err;
    const Json j = Json::parse(show.out);
    EXPECT_EQ(j["dtype"], std::string(DTypeName(dtype)));
    EXPECT_EQ(j["shape"], Json::array({2, 2}));
    EXPECT_EQ(j["statistics"]["min"], 0.0);
    EXPECT_EQ(j["statistics"]["max"], dtype == v1::DT_BOOL ? 1.0 : 3.0);
    const CliResult get = Run({"get", name});
    ASSERT_EQ(get.code, 0) << get.err;
    EXPECT_EQ(get.out, dtype == v1::DT_BOOL
                           ? "[[false, true],\n [true, true]]\n"
                       : IsFloating(dtype) ? "[[0.0, 1.0],\n [2.0, 3.0]]\n"
                                           : "[[0, 1],\n [2, 3]]\n");
  }
}

TEST_F(InspectTest, ShowOfAMissingVariableExitsOneWithSimilarNames) {
  const CliResult r = Run({"show", "model/dense/kernal"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "varscope show: NOT_FOUND: Variable model/dense/kernal does not "
            "exist. Similar names: model/dense/kernel\n");
}

TEST_F(InspectTest, GetPrintsTheValueAsNestedLists) {
  const CliResult r = Run({"get", "model/dense/kernel"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[[1.0, 2.0],\n [3.0, 4.0],\n [5.0, 6.0]]\n");
  EXPECT_EQ(Run({"get", "global_step"}).out, "42\n");
}

TEST_F(InspectTest, GetJsonGivesDtypeShapeVersionAndValues) {
  const CliResult r = Run({"get", "--json", "model/emb"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out), Json::parse(R"({
      "name": "model/emb", "dtype": "float32", "shape": [4, 2],
      "version": 2, "values": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0],
                               [7.0, 8.0]]})"));
}

TEST_F(InspectTest, GetPrintsHalfAndBfloat16WithTheirShortestDigits) {
  const Tensor tenths = Floats({3}, {0.1f, 1.5f, -300.7f});
  Put("h", Cast(tenths, v1::DT_HALF));
  Put("b", Cast(tenths, v1::DT_BFLOAT16));
  EXPECT_EQ(Run({"get", "h"}).out, "[0.1, 1.5, -300.8]\n");
  EXPECT_EQ(Run({"get", "b"}).out, "[0.1, 1.5, -300.0]\n");
  EXPECT_EQ(Json::parse(Run({"get", "--json", "h"}).out)["values"],
            Json::parse("[0.1, 1.5, -300.8]"));
}

TEST_F(InspectTest, DiagnoseExplainsTheSeedArticlesMissingOuterScope) {
  // The seed article: model/my_scope/weights exists, the worker asks for
  // my_scope/weights with reuse=True.
  const CliResult r = Run({"diagnose", "my_scope/weights"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out,
            "my_scope/weights does not exist.\n"
            "get_variable(\"my_scope/weights\", reuse=True) fails with "
            "NOT_FOUND:\n"
            "  Variable my_scope/weights does not exist, or was not created "
            "with tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE "
            "in VarScope? Variables named 'weights' exist at: "
            "model/my_scope/weights\n"
            "\n"
            "The same name under outer scopes:\n"
            "  model/my_scope/weights  float32 (10, 1)\n"
            "\n"
            "Hint: my_scope/weights exists as model/my_scope/weights: the "
            "calling code is missing the outer scope 'model'. Enter "
            "variable_scope(\"model\") around it, or ask for "
            "model/my_scope/weights.\n");
  EXPECT_THAT(r.err, HasSubstr("varscope diagnose: NOT_FOUND: Variable "
                               "my_scope/weights does not exist"));
}

TEST_F(InspectTest, DiagnoseJsonReportsCandidatesAndVerdict) {
  const CliResult r = Run({"diagnose", "--json", "my_scope/weights"});
  EXPECT_EQ(r.code, 1);
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["exists"], false);
  EXPECT_EQ(j["verdict"]["ok"], false);
  EXPECT_EQ(j["verdict"]["code"], "NOT_FOUND");
  EXPECT_EQ(j["outer_scopes"], Json::parse(R"([{"name":
      "model/my_scope/weights", "dtype": "float32", "shape": [10, 1]}])"));
  EXPECT_EQ(j["same_leaf"], Json::array());
  EXPECT_EQ(j["closest"], Json::array());
}

TEST_F(InspectTest, DiagnoseOfAnExistingVariableSucceeds) {
  const CliResult r = Run({"diagnose", "model/my_scope/weights", "--shape",
                           "10,1", "--dtype", "float32"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "model/my_scope/weights exists: variable, float32 (10, 1), "
            "version 2, 40 B.\n"
            "get_variable(\"model/my_scope/weights\", shape=(10, 1), "
            "dtype=float32, reuse=True) succeeds.\n"
            "\n"
            "Hint: Nothing to fix.\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(InspectTest, DiagnoseReportsTheServersShapeMismatch) {
  const CliResult r =
      Run({"diagnose", "model/my_scope/weights", "--shape", "(10, 2)"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out,
              HasSubstr("get_variable(\"model/my_scope/weights\", shape=(10, "
                        "2), reuse=True) fails with INVALID_ARGUMENT:\n"
                        "  Trying to share variable model/my_scope/weights, "
                        "but specified shape (10, 2) and found shape (10, "
                        "1).\n"));
  EXPECT_THAT(r.out, HasSubstr("Hint: The variable exists with dtype float32 "
                               "and shape (10, 1)"));
}

TEST_F(InspectTest, DiagnoseOfAScopeSaysItIsAScope) {
  const CliResult r = Run({"diagnose", "model/dense"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("\nVariables under model/dense/: 2 (e.g. "
                               "model/dense/bias)\n"));
  EXPECT_THAT(r.out, HasSubstr("Hint: model/dense is a scope holding 2 "
                               "variables (e.g. model/dense/bias), not a "
                               "variable.\n"));
}

TEST_F(InspectTest, DiagnoseOfATypoSuggestsTheClosestName) {
  const CliResult r = Run({"diagnose", "model/dense/kernal"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("Closest names:\n"
                               "  model/dense/kernel  float32 (3, 2)  (edit "
                               "distance 1)\n"));
  EXPECT_THAT(r.out, HasSubstr("Hint: Did you mean model/dense/kernel?\n"));
}

TEST_F(InspectTest, DiagnoseOfAnExtraOuterScopeNamesTheVariableWithoutIt) {
  const CliResult r = Run({"diagnose", "tower_0/model/dense/bias"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("The name without its outer scopes:\n"
                               "  model/dense/bias  float32 (2,)\n"));
  EXPECT_THAT(r.out, HasSubstr("Hint: tower_0/model/dense/bias exists as "
                               "model/dense/bias, outside scope 'tower_0'"));
}

TEST_F(InspectTest, DiagnoseFindsAPartitionedVariableAndItsParts) {
  const CliResult r = Run({"diagnose", "model/emb"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("model/emb exists: partitioned variable of 2 parts, "
                        "float32 (4, 2), version 2, 32 B.\n"));
  EXPECT_THAT(r.out, HasSubstr("Partitioned parts:\n  model/emb/part_0\n  "
                               "model/emb/part_1\n"));
}

}  // namespace
}  // namespace varscope::cli::testing
