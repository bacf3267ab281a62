// set, rm and mv against a real server.
#include "client/cli/edit.h"

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::varscope::testing::PollUntil;
using Json = nlohmann::json;

class EditTest : public CliTest {
 protected:
  void SetUp() override { Populate(); }
  std::string Value(const std::string& name) {
    const CliResult r = Run({"get", name});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out;
  }
  ::varscope::testing::TempDir dir_;
};

TEST_F(EditTest, SetReplacesTheValueAndPrintsTheNewVersion) {
  const CliResult r =
      Run({"set", "model/dense/kernel", "--value", "[[6, 5], [4, 3], [2, 1]]"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Set model/dense/kernel (float32 (3, 2)): version 3\n");
  EXPECT_EQ(Value("model/dense/kernel"),
            "[[6.0, 5.0],\n [4.0, 3.0],\n [2.0, 1.0]]\n");
}

TEST_F(EditTest, SetWithOneElementFillsEveryElement) {
  const CliResult r =
      Run({"--json", "set", "model/dense/kernel", "--value", "0"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out),
            (Json{{"name", "model/dense/kernel"}, {"version", 3}}));
  EXPECT_EQ(Value("model/dense/kernel"),
            "[[0.0, 0.0],\n [0.0, 0.0],\n [0.0, 0.0]]\n");
}

TEST_F(EditTest, SetOfAPartitionedVariableWritesEveryPart) {
  const CliResult r =
      Run({"set", "model/emb", "--value", "[[8,7],[6,5],[4,3],[2,1]]"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Value("model/emb/part_0"), "[[8.0, 7.0],\n [6.0, 5.0]]\n");
  EXPECT_EQ(Value("model/emb/part_1"), "[[4.0, 3.0],\n [2.0, 1.0]]\n");
}

TEST_F(EditTest, SetAcceptsNanAndInfinities) {
  const CliResult r =
      Run({"set", "model/dense/bias", "--value", R"(["nan", "-inf"])"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Value("model/dense/bias"), "[nan, -inf]\n");
}

TEST_F(EditTest, SetOfAValueOfTheWrongShapeExitsTwoAndChangesNothing) {
  const CliResult r =
      Run({"set", "model/dense/kernel", "--value", "[1, 2, 3]"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "varscope set: INVALID_ARGUMENT: Value has shape (3,) but the "
            "variable has shape (3, 2)\n");
  EXPECT_EQ(Value("model/dense/kernel"),
            "[[1.0, 2.0],\n [3.0, 4.0],\n [5.0, 6.0]]\n");
  EXPECT_THAT(
      Run({"set", "model/dense/kernel", "--value", "[[1,2],[3],[4,5]]"}).err,
      HasSubstr("ragged"));
}

TEST_F(EditTest, SetOfElementsThatDoNotFitTheDtypeExitsTwo) {
  struct Case {
    DType dtype;
    const char* value;
    const char* error;
  };
  const Case cases[] = {
      {v1::DT_INT32, "1.5", "Element 1.5 is not a valid int32: not an integer"},
      {v1::DT_INT8, "300", "Element 300 is not a valid int8: out of range"},
      {v1::DT_HALF, "1e6",
       "Element 1000000.0 is not a valid float16: out of range"},
      {v1::DT_BOOL, "2",
       "Element 2 is not a valid bool: expected true, false, 0 or 1"},
      {v1::DT_FLOAT, "\"one\"",
       "Element \"one\" is not a valid float32: expected a number, nan, inf "
       "or -inf"},
      {v1::DT_FLOAT, "[1, 2", "Value '[1, 2' is not a number"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    const std::string name = absl::StrCat("typed/", DTypeName(c.dtype));
    if (!client_->Stat(name).ok()) Put(name, Tensor(c.dtype, {}));
    const CliResult r = Run({"set", name, "--value", c.value});
    EXPECT_EQ(r.code, 2);
    EXPECT_THAT(r.err, HasSubstr(c.error));
  }
}

TEST_F(EditTest, SetFromNpyReadsWhatNumpyWrote) {
  const std::string little = dir_.path() + "/little.npy";
  const std::string big = dir_.path() + "/big.npy";
  const std::string doubles = dir_.path() + "/doubles.npy";
  RunPython(
      "import numpy as np, sys\n"
      "np.save(sys.argv[1], np.arange(6, dtype='<f4').reshape(3, 2) * 2)\n"
      "np.save(sys.argv[2], np.arange(6, dtype='>f4').reshape(3, 2))\n"
      "np.save(sys.argv[3], np.zeros((3, 2)))\n",
      {little, big, doubles});
  CliResult r = Run({"set", "model/dense/kernel", "--from-npy", little});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Value("model/dense/kernel"),
            "[[0.0, 2.0],\n [4.0, 6.0],\n [8.0, 10.0]]\n");
  r = Run({"set", "model/dense/kernel", "--from-npy", big});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Value("model/dense/kernel"),
            "[[0.0, 1.0],\n [2.0, 3.0],\n [4.0, 5.0]]\n");
  r = Run({"set", "model/dense/kernel", "--from-npy", doubles});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "varscope set: INVALID_ARGUMENT: A value of dtype float64 does not "
            "fit variable model/dense/kernel of dtype float32\n");
  r = Run(
      {"set", "model/dense/kernel", "--from-npy", dir_.path() + "/none.npy"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, absl::StrCat("varscope set: INVALID_ARGUMENT: Cannot open ",
                                dir_.path(),
                                "/none.npy: No such file or directory\n"));
}

TEST_F(EditTest, SetFromNpyTakesFloat32ForABfloat16Variable) {
  Put("b", Tensor(v1::DT_BFLOAT16, {3}));
  const std::string path = dir_.path() + "/b.npy";
  RunPython(
      "import numpy as np, sys\n"
      "np.save(sys.argv[1], np.array([0.1, 1.5, 3.0], np.float32))\n",
      {path});
  const CliResult r = Run({"set", "b", "--from-npy", path});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Value("b"), "[0.1, 1.5, 3.0]\n");
}

TEST_F(EditTest, SetNeedsExactlyOneOfValueAndFromNpy) {
  EXPECT_EQ(Run({"set", "model/dense/bias"}).code, 2);
  const CliResult r =
      Run({"set", "model/dense/bias", "--value", "1", "--from-npy", "x.npy"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
}

TEST_F(EditTest, SetOfAMissingVariableExitsOne) {
  EXPECT_EQ(Run({"set", "nosuch", "--value", "1"}).code, 1);
}

TEST_F(EditTest, RmDeletesOneVariable) {
  const CliResult r = Run({"rm", "model/dense/bias"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Deleted 1 variable\n");
  EXPECT_EQ(Run({"ls", "--names", "model/dense"}).out, "model/dense/kernel\n");
}

TEST_F(EditTest, RmRecursiveAsksAndDeletesOnYes) {
  const CliResult r = Run({"rm", "-r", "model/dense"}, "y\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "Delete 2 variables (32 B) under model/dense? [y/N] ");
  EXPECT_EQ(r.out, "Deleted 2 variables\n");
  EXPECT_EQ(Run({"ls", "model/dense"}).code, 1);
}

TEST_F(EditTest, RmRecursiveNotConfirmedDeletesNothingAndExitsThree) {
  for (const char* answer : {"n\n", "", "maybe\n"}) {
    SCOPED_TRACE(answer);
    const CliResult r = Run({"rm", "-r", "model"}, answer);
    EXPECT_EQ(r.code, 3);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err,
              "Delete 5 variables (104 B) under model? [y/N] varscope rm: "
              "CANCELLED: Not confirmed; nothing was deleted\n");
  }
  EXPECT_EQ(Run({"ls", "-r", "--names", "model"}).out,
            "model/dense/bias\nmodel/dense/kernel\nmodel/emb/part_0\n"
            "model/emb/part_1\nmodel/my_scope/weights\n");
}

TEST_F(EditTest, RmRecursiveWithYesDoesNotAsk) {
  const CliResult r = Run({"rm", "-r", "--yes", "model"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "Deleted 5 variables\n");
  EXPECT_EQ(Run({"ls", "--names"}).out, "global_step\nopt/\n");
}

TEST_F(EditTest, RmDryRunListsWhatWouldGoAndDeletesNothing) {
  CliResult r = Run({"rm", "-r", "--dry-run", "model/dense"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "would delete model/dense/bias\n"
            "would delete model/dense/kernel\n"
            "2 variables (32 B) would be deleted; nothing was deleted (dry "
            "run)\n");
  r = Run({"--json", "rm", "-n", "model/emb", "-r"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out), Json::parse(R"([
      {"name": "model/emb/part_0", "bytes": 16},
      {"name": "model/emb/part_1", "bytes": 16}])"));
  EXPECT_EQ(Run({"ls", "-r", "--names", "model/dense"}).out,
            "model/dense/bias\nmodel/dense/kernel\n");
}

TEST_F(EditTest, RmOfAMissingNameExitsOneWithSimilarNames) {
  CliResult r = Run({"rm", "model/dense/kernal"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("Similar names: model/dense/kernel"));
  r = Run({"rm", "-r", "-n", "nosuch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
}

TEST_F(EditTest, MvRenamesAVariable) {
  const CliResult r = Run({"mv", "global_step", "train/global_step"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Renamed 1 variable: global_step -> train/global_step\n");
  EXPECT_EQ(Value("train/global_step"), "42\n");
}

TEST_F(EditTest, MvRenamesAWholeScopeIncludingPartitionedVariables) {
  const CliResult r = Run({"--json", "mv", "model", "net"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out),
            (Json{{"old_name", "model"}, {"new_name", "net"}, {"renamed", 5}}));
  EXPECT_EQ(Value("net/emb"),
            "[[1.0, 2.0],\n [3.0, 4.0],\n [5.0, 6.0],\n [7.0, 8.0]]\n");
  EXPECT_EQ(Run({"ls", "model"}).code, 1);
}

TEST_F(EditTest, MvOntoAnExistingNameExitsThreeAndChangesNothing) {
  const CliResult r = Run({"mv", "model/dense/bias", "model/dense/kernel"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "varscope mv: ALREADY_EXISTS: Cannot rename model/dense/bias to "
            "model/dense/kernel: Variable model/dense/kernel already exists\n");
  EXPECT_EQ(Value("model/dense/bias"), "[0.5, -0.5]\n");
}

TEST_F(EditTest, MvIntoItselfExitsTwo) {
  EXPECT_EQ(Run({"mv", "model", "model/inner"}).code, 2);
}

TEST_F(EditTest, MvOfAScopeIsAtomicForAConcurrentReader) {
  constexpr int kVariables = 50;
  for (int i = 0; i < kVariables; ++i) {
    Put(absl::StrCat("src/v", i), Floats({1}, {static_cast<float>(i)}));
  }
  // The reader lists everything in one page (one consistent read on the
  // server) again and again: every snapshot must hold all the old names or
  // all the new ones.
  std::atomic<bool> renamed{false};
  std::atomic<int> torn{0}, old_seen{0}, new_seen{0};
  std::thread reader([&] {
    std::shared_ptr<Client> client = server_.NewClient();
    v1::ListVariablesRequest request;
    request.set_recursive(true);
    request.set_page_size(10000);
    const absl::Time deadline = absl::Now() + absl::Minutes(2);
    bool after = false;
    while (absl::Now() < deadline && !(after && new_seen > 0)) {
      after = renamed;  // read before listing: this snapshot may be new
      absl::StatusOr<v1::ListVariablesResponse> page =
          client->ListVariables(request);
      ASSERT_TRUE(page.ok()) << page.status();
      int src = 0, dst = 0;
      for (const auto& e : page->entries()) {
        src += absl::StartsWith(e.name(), "src/");
        dst += absl::StartsWith(e.name(), "dst/");
      }
      if (src == kVariables && dst == 0) {
        ++old_seen;
      } else if (src == 0 && dst == kVariables) {
        ++new_seen;
      } else {
        ++torn;
      }
    }
  });
  EXPECT_TRUE(PollUntil([&] { return old_seen > 0; }, absl::Minutes(2)))
      << "the reader never listed the old names";
  const CliResult r = Run({"mv", "src", "dst"});
  renamed = true;
  reader.join();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Renamed 50 variables: src -> dst\n");
  EXPECT_EQ(torn, 0);
  EXPECT_GT(old_seen, 0);
  EXPECT_GT(new_seen, 0);
  EXPECT_EQ(Value("dst/v49"), "[49.0]\n");
}

}  // namespace
}  // namespace varscope::cli::testing
