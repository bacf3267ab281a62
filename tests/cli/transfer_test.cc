// export and import: round trips between servers, and numpy compatibility.
#include "client/cli/transfer.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/cli/values.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Json = nlohmann::json;

class TransferTest : public CliTest {
 protected:
  void SetUp() override {
    Populate();
    const Tensor counting = Floats({2, 3}, {0.5f, 1, 2, 3, 4, -5});
    for (DType dtype : kAllDTypes) {
      Put(absl::StrCat("dtypes/", DTypeName(dtype)), Cast(counting, dtype));
    }
    // Not trainable, random with a seed: metadata an import must keep.
    v1::GetVariableRequest request;
    request.set_name("model/frozen");
    request.set_mode(v1::CREATE);
    request.set_dtype(v1::DT_DOUBLE);
    request.mutable_shape()->add_dims(3);
    request.set_trainable(false);
    request.mutable_collections()->add_names("variables");
    request.mutable_collections()->add_names("frozen");
    request.mutable_initializer()->set_kind(v1::Initializer::RANDOM_NORMAL);
    request.mutable_initializer()->set_stddev(0.5);
    request.mutable_initializer()->set_seed(1234);
    ASSERT_TRUE(client_->GetVariable(request).ok());
  }

  std::string Path(const std::string& file) const {
    return absl::StrCat(dir_.path(), "/", file);
  }

  // Every stored variable's metadata, by name.
  static std::map<std::string, v1::VariableInfo> Infos(Client& client) {
    std::map<std::string, v1::VariableInfo> infos;
    v1::ListVariablesRequest request;
    request.set_recursive(true);
    request.set_page_size(10000);
    absl::StatusOr<v1::ListVariablesResponse> page =
        client.ListVariables(request);
    EXPECT_TRUE(page.ok()) << page.status();
    for (const auto& e : page->entries()) infos[e.name()] = e.variable();
    return infos;
  }

  ::varscope::testing::TempDir dir_;
};

TEST_F(TransferTest, ExportThenImportToASecondServerKeepsEverything) {
  const CliResult exported = Run({"export", "-o", Path("all.npz")});
  EXPECT_EQ(exported.code, 0) << exported.err;
  EXPECT_EQ(exported.out,
            absl::StrCat("Exported 17 variables (358 B) to ", Path("all.npz"),
                         "; metadata in ", Path("all.npz.json"), "\n"));

  ::varscope::testing::TestServer second;
  const CliResult imported =
      RunCli({"--server", second.address(), "import", Path("all.npz")});
  EXPECT_EQ(imported.code, 0) << imported.err;
  EXPECT_EQ(imported.out, absl::StrCat("Imported 17 variables (358 B) from ",
                                       Path("all.npz"), "\n"));

  std::shared_ptr<Client> target = second.NewClient();
  const auto before = Infos(*client_);
  const auto after = Infos(*target);
  ASSERT_EQ(before.size(), 18u);  // model/emb is two parts
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [name, info] : before) {
    SCOPED_TRACE(name);
    ASSERT_EQ(after.count(name), 1u);
    const v1::VariableInfo& copy = after.at(name);
    EXPECT_EQ(copy.dtype(), info.dtype());
    EXPECT_EQ(copy.shape().SerializeAsString(),
              info.shape().SerializeAsString());
    EXPECT_EQ(copy.trainable(), info.trainable());
    EXPECT_EQ(copy.has_collections(), info.has_collections());
    EXPECT_EQ(copy.collections().SerializeAsString(),
              info.collections().SerializeAsString());
    EXPECT_EQ(copy.initializer().SerializeAsString(),
              info.initializer().SerializeAsString());
    EXPECT_EQ(copy.slice().SerializeAsString(),
              info.slice().SerializeAsString());
    absl::StatusOr<ReadResult> a = client_->Read(name);
    absl::StatusOr<ReadResult> b = target->Read(name);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->value.bytes(), b->value.bytes());
  }
}

TEST_F(TransferTest, ImportIntoPutsVariablesUnderAScopeNamedRelatively) {
  ASSERT_EQ(Run({"export", "model", "-o", Path("model.npz")}).code, 0);
  ::varscope::testing::TestServer second;
  const CliResult r = RunCli({"--server", second.address(), "import",
                              Path("model.npz"), "--into", "restored/"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(" into restored\n"));
  EXPECT_EQ(
      RunCli({"--server", second.address(), "ls", "-r", "--names"}).out,
      "restored/dense/bias\nrestored/dense/kernel\nrestored/emb/part_0\n"
      "restored/emb/part_1\nrestored/frozen\nrestored/my_scope/weights\n");
  EXPECT_EQ(RunCli({"--server", second.address(), "get", "restored/emb"}).out,
            "[[1.0, 2.0],\n [3.0, 4.0],\n [5.0, 6.0],\n [7.0, 8.0]]\n");
}

TEST_F(TransferTest, JsonReportsCountsBytesAndFiles) {
  CliResult r = Run({"--json", "export", "model/dense", "-o", Path("d.npz"),
                     "--metadata", Path("meta.json")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out), (Json{{"exported", 2},
                                      {"bytes", 32},
                                      {"file", Path("d.npz")},
                                      {"metadata", Path("meta.json")}}));
  ::varscope::testing::TestServer second;
  r = RunCli({"--server", second.address(), "--json", "import", Path("d.npz"),
              "--metadata", Path("meta.json")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out),
            (Json{{"imported", 2}, {"bytes", 32}, {"file", Path("d.npz")}}));
}

TEST_F(TransferTest, ImportCreateOnlyFailsBeforeWritingWhenATargetExists) {
  ASSERT_EQ(Run({"export", "model/dense", "-o", Path("dense.npz")}).code, 0);
  CliResult r = Run({"import", Path("dense.npz")});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "varscope import: ALREADY_EXISTS: 2 variables to import already "
            "exist (model/dense/bias, model/dense/kernel); nothing was "
            "imported. Pass --overwrite to replace them\n");
  ASSERT_EQ(Run({"rm", "model/dense/bias"}).code, 0);
  r = Run({"import", Path("dense.npz")});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "varscope import: ALREADY_EXISTS: 1 variable to import already "
            "exists (model/dense/kernel); nothing was imported. Pass "
            "--overwrite to replace it\n");
  EXPECT_EQ(Run({"ls", "--names", "model/dense"}).out, "model/dense/kernel\n");
}

TEST_F(TransferTest, ImportOverwriteReplacesExistingValues) {
  ASSERT_EQ(Run({"export", "model", "-o", Path("model.npz")}).code, 0);
  ASSERT_EQ(Run({"set", "model/emb", "--value", "0"}).code, 0);
  ASSERT_EQ(Run({"set", "model/dense/bias", "--value", "9"}).code, 0);
  const CliResult r = Run({"import", "--overwrite", Path("model.npz")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Run({"get", "model/emb"}).out,
            "[[1.0, 2.0],\n [3.0, 4.0],\n [5.0, 6.0],\n [7.0, 8.0]]\n");
  EXPECT_EQ(Run({"get", "model/dense/bias"}).out, "[0.5, -0.5]\n");
}

TEST_F(TransferTest, ImportOverwriteOfADifferentShapeFailsWithTheServersError) {
  ASSERT_EQ(Run({"export", "model/dense", "-o", Path("dense.npz")}).code, 0);
  ASSERT_EQ(Run({"rm", "-r", "--yes", "model/dense"}).code, 0);
  Put("model/dense/bias", Floats({3}, {1, 2, 3}));
  const CliResult r = Run({"import", "--overwrite", Path("dense.npz")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "varscope import: INVALID_ARGUMENT: Trying to share variable "
            "model/dense/bias, but specified shape (2,) and found shape "
            "(3,).\n");
}

TEST_F(TransferTest, NumpyLoadsTheExportedNpzWithNamesDtypesAndValues) {
  const CliResult r = Run({"export", "-o", Path("all.npz")});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string out = RunPython(
      "import json, sys, numpy as np\n"
      "d = np.load(sys.argv[1])\n"
      "for k in sorted(d.files): print(k, d[k].dtype, d[k].shape)\n"
      "print(d['model/emb'].tolist())\n"
      "print(d['dtypes/bfloat16'].tolist())\n"
      "print(d['dtypes/float16'].tolist())\n"
      "print(d['global_step'].tolist())\n"
      "m = json.load(open(sys.argv[1] + '.json'))\n"
      "b = m['variables']['dtypes/bfloat16']\n"
      "print(b['dtype'], b['npz_dtype'], m['scope'] == '')\n"
      "e = m['variables']['model/emb']\n"
      "print(e['partitions'], [p['offset'] for p in e['parts']])\n"
      "f = m['variables']['model/frozen']\n"
      "print(f['trainable'], f['initializer'], f['collections'])\n",
      {Path("all.npz")});
  EXPECT_EQ(out,
            "dtypes/bfloat16 float32 (2, 3)\n"
            "dtypes/bool bool (2, 3)\n"
            "dtypes/float16 float16 (2, 3)\n"
            "dtypes/float32 float32 (2, 3)\n"
            "dtypes/float64 float64 (2, 3)\n"
            "dtypes/int16 int16 (2, 3)\n"
            "dtypes/int32 int32 (2, 3)\n"
            "dtypes/int64 int64 (2, 3)\n"
            "dtypes/int8 int8 (2, 3)\n"
            "dtypes/uint8 uint8 (2, 3)\n"
            "global_step int64 ()\n"
            "model/dense/bias float32 (2,)\n"
            "model/dense/kernel float32 (3, 2)\n"
            "model/emb float32 (4, 2)\n"
            "model/frozen float64 (3,)\n"
            "model/my_scope/weights float32 (10, 1)\n"
            "opt/model/dense/kernel/Adam float32 (3, 2)\n"
            "[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]\n"
            "[[0.5, 1.0, 2.0], [3.0, 4.0, -5.0]]\n"
            "[[0.5, 1.0, 2.0], [3.0, 4.0, -5.0]]\n"
            "42\n"
            "bfloat16 float32 True\n"
            "[2, 1] [[0, 0], [2, 0]]\n"
            "False {'kind': 'RANDOM_NORMAL', 'seed': '1234', 'stddev': 0.5} "
            "['variables', 'frozen']\n");
}

TEST_F(TransferTest, ImportReadsNumpysCompressedNpzWithoutMetadata) {
  RunPython(
      "import sys, numpy as np\n"
      "np.savez_compressed(sys.argv[1], **{\n"
      "    'layer/w': np.arange(12, dtype=np.float32).reshape(3, 4),\n"
      "    'layer/mask': np.array([True, False]),\n"
      "    'step': np.array(7, dtype=np.int64)})\n",
      {Path("numpy.npz")});
  ::varscope::testing::TestServer second;
  const CliResult r =
      RunCli({"--server", second.address(), "import", Path("numpy.npz")});
  EXPECT_EQ(r.code, 0) << r.err;
  auto get = [&](const std::string& name) {
    return RunCli({"--server", second.address(), "get", name}).out;
  };
  EXPECT_EQ(get("layer/w"),
            "[[0.0, 1.0, 2.0, 3.0],\n [4.0, 5.0, 6.0, 7.0],\n [8.0, 9.0, "
            "10.0, 11.0]]\n");
  EXPECT_EQ(get("layer/mask"), "[true, false]\n");
  EXPECT_EQ(get("step"), "7\n");
}

TEST_F(TransferTest, ExportOfAMissingScopeExitsOneAndLeavesNoFile) {
  const CliResult r = Run({"export", "nosuch", "-o", Path("x.npz")});
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(std::filesystem::exists(Path("x.npz")));
  EXPECT_FALSE(std::filesystem::exists(Path("x.npz.partial")));
  EXPECT_FALSE(std::filesystem::exists(Path("x.npz.json")));
}

TEST_F(TransferTest, ImportOfAFileThatIsNotAZipExitsTwo) {
  const std::string path = Path("bad.npz");
  RunPython("import sys; open(sys.argv[1], 'w').write('hello')", {path});
  const CliResult r = Run({"import", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("is not a readable zip archive"));
}

TEST_F(TransferTest, ProgressIsDrawnOnStderrOnlyWhenItIsATerminal) {
  CliResult r = Run({"export", "model", "-o", Path("m.npz")});
  EXPECT_EQ(r.err, "");
  r = Run({"export", "model", "-o", Path("m.npz")}, "", /*terminal=*/true);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, StartsWith("\rexport 1 variable, "));
  EXPECT_TRUE(absl::EndsWith(r.err, "\rexport 5 variables, 128 B\033[K\n"))
      << r.err;
  ::varscope::testing::TestServer second;
  r = RunCli({"--server", second.address(), "import", Path("m.npz")}, "", {},
             nullptr, /*terminal=*/true);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::EndsWith(
      r.err,
      "\rimport [####################] 100% 5/5 variables, 128 B\033[K\n"))
      << r.err;
}

}  // namespace
}  // namespace varscope::cli::testing
