// Unit tests of the CLI's formats: globs, .npy, zip, values, text forms.
#include <cmath>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/format.h"
#include "client/cli/glob.h"
#include "client/cli/npy.h"
#include "client/cli/values.h"
#include "client/cli/zip.h"
#include "common/files.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::varscope::testing::IsOk;
using ::varscope::testing::StatusIs;

TEST(Glob, StarStaysInOneSegmentAndDoubleStarCrossesSegments) {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  };
  const Case cases[] = {
      {"*/weights", "my_scope/weights", true},
      {"*/weights", "model/my_scope/weights", false},
      {"**/weights", "model/my_scope/weights", true},
      {"**/weights", "weights", true},
      {"model/**/Adam*", "model/Adam", true},
      {"model/**/Adam*", "model/dense/kernel/Adam_1", true},
      {"model/**/Adam*", "model/dense/kernel", false},
      {"model/**", "model", true},
      {"model/**", "model/a/b", true},
      {"model/*", "model/a/b", false},
      {"w?", "w1", true},
      {"w?", "w12", false},
      {"a?b", "a/b", false},
      {"*", "a", true},
      {"k*n*l", "kernel", true},
      {"k*n*l", "kern", false},
      {"a/**/**/b", "a/b", true},
      {"exact/name", "exact/name", true},
      {"exact/name", "exact/names", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GlobMatch(c.pattern, c.name), c.match)
        << c.pattern << " vs " << c.name;
  }
}

TEST(Glob, ScopeIsTheLeadingLiteralSegmentsWithoutTheLast) {
  EXPECT_EQ(GlobScope("model/**/Adam*"), "model");
  EXPECT_EQ(GlobScope("*/weights"), "");
  EXPECT_EQ(GlobScope("a/b/c"), "a/b");
  EXPECT_EQ(GlobScope("a/b?/c"), "a");
  EXPECT_EQ(GlobScope("weights"), "");
}

TEST(Npy, HeaderIsNumpysVersionOneHeader) {
  absl::StatusOr<std::string> header = NpyHeader(v1::DT_FLOAT, {2, 3});
  ASSERT_THAT(header, IsOk());
  const std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(header->size(), 128u);
  EXPECT_EQ(header->substr(0, 10),
            std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  EXPECT_EQ(header->substr(10, dict.size()), dict);
  EXPECT_EQ(header->back(), '\n');
  EXPECT_THAT(*NpyHeader(v1::DT_BOOL, {5}),
              HasSubstr("{'descr': '|b1', 'fortran_order': False, 'shape': "
                        "(5,), }"));
  EXPECT_THAT(*NpyHeader(v1::DT_INT64, {}), HasSubstr("'shape': (), }"));
  EXPECT_THAT(NpyHeader(v1::DT_BFLOAT16, {1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "numpy has no dtype for bfloat16; convert it first"));
}

TEST(Npy, EveryNumpyDtypeRoundTrips) {
  for (DType dtype : kAllDTypes) {
    if (dtype == v1::DT_BFLOAT16) continue;
    SCOPED_TRACE(DTypeName(dtype));
    const Tensor value = Cast(Floats({3, 1}, {0, 1, 1}), dtype);
    absl::StatusOr<Tensor> parsed =
        ParseNpy(*NpyHeader(dtype, value.dims()) + value.bytes());
    ASSERT_THAT(parsed, IsOk());
    EXPECT_EQ(parsed->dtype(), dtype);
    EXPECT_THAT(parsed->dims(), ElementsAre(3, 1));
    EXPECT_EQ(parsed->bytes(), value.bytes());
  }
}

TEST(Npy, RejectsWhatItCannotRepresent) {
  auto npy = [](const std::string& dict, const std::string& data) {
    std::string header = dict + "\n";
    return absl::StrCat(std::string("\x93NUMPY\x01\x00", 8),
                        std::string(1, static_cast<char>(header.size())),
                        std::string(1, '\0'), header, data);
  };
  EXPECT_THAT(ParseNpy(npy("{'descr': '<c8', 'fortran_order': False, "
                           "'shape': (1,), }",
                           std::string(8, '\0'))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'<c8' has no Varscope counterpart")));
  EXPECT_THAT(ParseNpy(npy("{'descr': '<f4', 'fortran_order': True, "
                           "'shape': (2, 2), }",
                           std::string(16, '\0'))),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("Fortran-ordered")));
  EXPECT_THAT(ParseNpy(npy("{'descr': '<f4', 'fortran_order': False, "
                           "'shape': (2, 2), }",
                           std::string(15, '\0'))),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ParseNpy("PK\x03\x04 not npy"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Not a .npy array: bad magic string"));
}

class ZipTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& file) const {
    return absl::StrCat(dir_.path(), "/", file);
  }
  ::varscope::testing::TempDir dir_;
};

TEST_F(ZipTest, MembersRoundTripAndPythonReadsThem) {
  absl::StatusOr<std::unique_ptr<ZipWriter>> writer =
      ZipWriter::Create(Path("a.zip"));
  ASSERT_THAT(writer, IsOk());
  const absl::string_view hello[] = {"hello, ", "world"};
  ASSERT_THAT((*writer)->Add("scope/a.txt", hello), IsOk());
  ASSERT_THAT((*writer)->Add("empty", {}), IsOk());
  ASSERT_THAT((*writer)->Finish(), IsOk());

  absl::StatusOr<std::unique_ptr<ZipReader>> reader =
      ZipReader::Open(Path("a.zip"));
  ASSERT_THAT(reader, IsOk());
  ASSERT_EQ((*reader)->members().size(), 2u);
  EXPECT_EQ((*reader)->members()[0].name, "scope/a.txt");
  EXPECT_EQ(*(*reader)->Read((*reader)->members()[0]), "hello, world");
  EXPECT_EQ(*(*reader)->Read((*reader)->members()[1]), "");
  EXPECT_EQ(RunPython("import sys, zipfile\n"
                      "z = zipfile.ZipFile(sys.argv[1])\n"
                      "print(z.testzip(), z.read('scope/a.txt').decode())\n",
                      {Path("a.zip")}),
            "None hello, world\n");
}

TEST_F(ZipTest, MoreThan65535MembersUseZip64Records) {
  absl::StatusOr<std::unique_ptr<ZipWriter>> writer =
      ZipWriter::Create(Path("many.zip"));
  ASSERT_THAT(writer, IsOk());
  constexpr int kMembers = 70000;
  for (int i = 0; i < kMembers; ++i) {
    const std::string content = absl::StrCat(i);
    const absl::string_view pieces[] = {content};
    ASSERT_THAT((*writer)->Add(absl::StrFormat("m%05d", i), pieces), IsOk());
  }
  ASSERT_THAT((*writer)->Finish(), IsOk());
  absl::StatusOr<std::unique_ptr<ZipReader>> reader =
      ZipReader::Open(Path("many.zip"));
  ASSERT_THAT(reader, IsOk());
  ASSERT_EQ((*reader)->members().size(), static_cast<size_t>(kMembers));
  EXPECT_EQ(*(*reader)->Read((*reader)->members().back()), "69999");
  EXPECT_EQ(RunPython("import sys, zipfile\n"
                      "z = zipfile.ZipFile(sys.argv[1])\n"
                      "print(len(z.namelist()), z.read('m69999').decode())\n",
                      {Path("many.zip")}),
            "70000 69999\n");
}

TEST_F(ZipTest, DamageIsDataLossAndGarbageIsNotAZip) {
  absl::StatusOr<std::unique_ptr<ZipWriter>> writer =
      ZipWriter::Create(Path("a.zip"));
  ASSERT_THAT(writer, IsOk());
  const absl::string_view data[] = {"payload"};
  ASSERT_THAT((*writer)->Add("x", data), IsOk());
  ASSERT_THAT((*writer)->Finish(), IsOk());
  absl::StatusOr<std::string> bytes = ReadFile(Path("a.zip"));
  ASSERT_THAT(bytes, IsOk());
  (*bytes)[bytes->find("payload")] = 'P';
  ASSERT_THAT(WriteFile(Path("bad.zip"), *bytes), IsOk());
  absl::StatusOr<std::unique_ptr<ZipReader>> reader =
      ZipReader::Open(Path("bad.zip"));
  ASSERT_THAT(reader, IsOk());
  EXPECT_THAT((*reader)->Read((*reader)->members()[0]),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("CRC mismatch")));
  ASSERT_THAT(WriteFile(Path("text.zip"), std::string(100, 'x')), IsOk());
  EXPECT_THAT(ZipReader::Open(Path("text.zip")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no end of central directory record")));
  EXPECT_THAT(ZipReader::Open(Path("missing.zip")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("Cannot open ", Path("missing.zip"),
                                    ": No such file or directory")));
}

TEST(Values, ParseValueReadsNestedListsAndFillsFromOneElement) {
  absl::StatusOr<Tensor> t =
      ParseValue("[[1, 2], [3, 4.5]]", v1::DT_DOUBLE, {2, 2});
  ASSERT_THAT(t, IsOk());
  EXPECT_THAT(t->flat<double>(), ElementsAre(1, 2, 3, 4.5));
  t = ParseValue("7", v1::DT_INT16, {3});
  ASSERT_THAT(t, IsOk());
  EXPECT_THAT(t->flat<int16_t>(), ElementsAre(7, 7, 7));
  t = ParseValue("[true, 0]", v1::DT_BOOL, {2});
  ASSERT_THAT(t, IsOk());
  EXPECT_THAT(t->flat<bool>(), ElementsAre(true, false));
  t = ParseValue("[\"inf\", \"NaN\"]", v1::DT_FLOAT, {2});
  ASSERT_THAT(t, IsOk());
  EXPECT_TRUE(std::isinf(t->flat<float>()[0]));
  EXPECT_TRUE(std::isnan(t->flat<float>()[1]));
  t = ParseValue("[]", v1::DT_FLOAT, {0});
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(t->num_elements(), 0);
  EXPECT_THAT(ParseValue("[255, 256]", v1::DT_UINT8, {2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Element 256 is not a valid uint8: out of range"));
  EXPECT_THAT(ParseValue("[-1]", v1::DT_UINT8, {1}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseValue("[[1, 2]]", v1::DT_FLOAT, {2, 1}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Value has shape (1, 2) but the variable has shape "
                       "(2, 1)"));
  EXPECT_THAT(ParseValue("3e38", v1::DT_BFLOAT16, {}), IsOk());
  EXPECT_THAT(
      ParseValue("4e38", v1::DT_FLOAT, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of range")));
}

TEST(Values, PrintsNestedListsAndShortestDigits) {
  std::ostringstream out;
  PrintValues(Cast(Floats({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}), v1::DT_INT32),
              out);
  EXPECT_EQ(out.str(), "[[[1, 2],\n  [3, 4]],\n [[5, 6],\n  [7, 8]]]");
  out.str("");
  PrintValues(Floats({2, 0}, {}), out);
  EXPECT_EQ(out.str(), "[[],\n []]");
  EXPECT_EQ(FormatFirstValues(Floats({3}, {0.1f, 1e20f, -0.0f}), 10),
            "[0.1, 1e+20, -0.0]");
  EXPECT_EQ(
      FormatFirstValues(Cast(Floats({2}, {65504, 1e-5f}), v1::DT_HALF), 10),
      "[65504.0, 1e-05]");
  EXPECT_EQ(FormatFirstValues(Floats({3}, {1, 2, 3}), 2), "[1.0, 2.0, ...]");
}

TEST(Values, CastRoundsToNearestEvenAndConformChecksDtypeAndShape) {
  const Tensor b = Cast(Floats({2}, {1.00390625f, 1.01171875f}),
                        v1::DT_BFLOAT16);  // ties between bfloat16 values
  EXPECT_EQ(BFloat16ToFloat(b.flat<BFloat16>()[0].bits), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(b.flat<BFloat16>()[1].bits), 1.015625f);
  EXPECT_THAT(ConformToVariable(Floats({2}, {1, 2}), v1::DT_BFLOAT16, {2}, "v"),
              IsOk());
  EXPECT_THAT(ConformToVariable(Floats({2}, {1, 2}), v1::DT_DOUBLE, {2}, "v"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A value of dtype float32 does not fit variable v of "
                       "dtype float64"));
  EXPECT_THAT(ConformToVariable(Floats({2}, {1, 2}), v1::DT_FLOAT, {1, 2}, "v"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "A value of shape (2,) does not fit variable v of "
                       "shape (1, 2)"));
}

TEST(Values, StatsOfAnEmptyValueHaveNoHistogram) {
  const ValueStats s = ComputeStats(Floats({0}, {}), 10);
  EXPECT_EQ(s.elements, 0);
  EXPECT_EQ(s.finite, 0);
  EXPECT_TRUE(s.histogram.empty());
  const ValueStats same = ComputeStats(Floats({3}, {2, 2, 2}), 10);
  ASSERT_EQ(same.histogram.size(), 1u);
  EXPECT_EQ(same.histogram[0].count, 3);
  EXPECT_EQ(same.stddev, 0);
}

TEST(Format, BytesShapesDurationsAndInitializers) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(int64_t{3} << 30), "3.0 GiB");
  EXPECT_EQ(FormatDuration(45), "45s");
  EXPECT_EQ(FormatDuration(3723), "1h 02m 03s");
  EXPECT_EQ(FormatDuration(2 * 86400 + 3 * 3600 + 4 * 60), "2d 03h 04m");
  EXPECT_THAT(*ParseShapeText("10,1"), ElementsAre(10, 1));
  EXPECT_THAT(*ParseShapeText("(None, 2)"), ElementsAre(-1, 2));
  EXPECT_THAT(*ParseShapeText("[3]"), ElementsAre(3));
  EXPECT_THAT(*ParseShapeText("()"), ElementsAre());
  EXPECT_THAT(ParseShapeText("10,x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  v1::Initializer init;
  init.set_kind(v1::Initializer::VARIANCE_SCALING);
  init.set_scale(2);
  init.set_mode(v1::Initializer::FAN_OUT);
  init.set_distribution(v1::Initializer::DIST_UNIFORM);
  init.set_seed(5);
  EXPECT_EQ(InitializerText(init),
            "variance_scaling(scale=2, mode=fan_out, distribution=uniform, "
            "seed=5)");
  init.Clear();
  init.set_kind(v1::Initializer::CONSTANT);
  TensorToProto(Floats({2}, {1, 2}), init.mutable_value());
  EXPECT_EQ(InitializerText(init), "constant(value=[1.0, 2.0])");
}

}  // namespace
}  // namespace varscope::cli::testing
