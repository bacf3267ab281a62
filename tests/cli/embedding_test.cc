// The CLI on embedding variables: show (keys, memory vs disk, counters,
// hottest keys) and .npz export/import of their rows.
#include <string>

#include "client/cli/npy.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"
#include "tests/testing/test_server.h"

namespace varscope::cli::testing {
namespace {

using ::testing::HasSubstr;

class EmbeddingCliTest : public CliTest {
 protected:
  void SetUp() override {
    v1::GetEmbeddingVariableRequest request;
    request.set_name("model/emb");
    request.set_mode(v1::CREATE);
    request.set_embedding_dim(2);
    request.set_filter_freq(2);
    ASSERT_TRUE(client_->GetEmbeddingVariable(request).ok());
    // Key 7 seen three times, 8 twice (stored), 9 once (below the filter).
    const std::vector<int64_t> keys = {7, 7, 8, 7, 8, 9};
    ASSERT_TRUE(client_
                    ->EmbeddingLookup("model/emb", Tensor::FromVector<int64_t>(
                                                       v1::DT_INT64, {6}, keys))
                    .ok());
  }
};

TEST_F(EmbeddingCliTest, ShowListsCountsAndHottestKeys) {
  const CliResult result = Run({"show", "model/emb", "--hottest", "1"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("kind         embedding variable\n"));
  EXPECT_THAT(result.out,
              HasSubstr("admission    CounterFilter(filter_freq=2)"));
  EXPECT_THAT(result.out, HasSubstr("keys         2\n"));
  EXPECT_THAT(result.out, HasSubstr("on disk only 0 keys"));
  EXPECT_THAT(result.out, HasSubstr("admitted     2 (1 keys below the "
                                    "frequency, 3 filtered)"));
  EXPECT_THAT(result.out, HasSubstr("hottest keys\n  7  frequency 3\n"));
  EXPECT_THAT(result.out, ::testing::Not(HasSubstr("  8  frequency")));

  const CliResult json = Run({"--json", "show", "model/emb"});
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"kind\":\"embedding\""));
  EXPECT_THAT(json.out, HasSubstr("\"keys\":2"));
}

TEST_F(EmbeddingCliTest, ExportThenImportRoundTrips) {
  ::varscope::testing::TempDir dir;
  const std::string path = dir.path() + "/emb.npz";
  CliResult result = Run({"embedding-export", "model/emb", "-o", path});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out, "Exported 2 rows of model/emb to " + path + "\n");
  EXPECT_EQ(RunPython("import numpy, sys\n"
                      "z = numpy.load(sys.argv[1])\n"
                      "print(list(z['keys']), z['values'].shape, "
                      "list(z['frequencies']))",
                      {path}),
            "[7, 8] (2, 2) [3, 2]\n");

  v1::GetEmbeddingVariableRequest request;
  request.set_name("copy");
  request.set_mode(v1::CREATE);
  request.set_embedding_dim(2);
  ASSERT_TRUE(client_->GetEmbeddingVariable(request).ok());
  result = Run({"embedding-import", "copy", path});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.out, "Imported 2 rows into copy from " + path + "\n");
  absl::StatusOr<v1::EmbeddingExportResponse> a =
      client_->EmbeddingExport("model/emb");
  absl::StatusOr<v1::EmbeddingExportResponse> b =
      client_->EmbeddingExport("copy");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->values().content(), b->values().content());
  EXPECT_EQ(a->keys().content(), b->keys().content());

  // A .npz without keys.npy.
  RunPython("import numpy, sys\nnumpy.savez(sys.argv[1], x=numpy.zeros(2))",
            {dir.path() + "/bad.npz"});
  result = Run({"embedding-import", "copy", dir.path() + "/bad.npz"});
  EXPECT_NE(result.code, 0);
  EXPECT_THAT(result.err,
              HasSubstr(dir.path() + "/bad.npz has no keys.npy (an embedding "
                                     "export holds keys.npy and values.npy)"));
}

}  // namespace
}  // namespace varscope::cli::testing
