// ls, tree, find and du against a real server.
#include "client/cli/browse.h"

#include <atomic>
#include <functional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/cli/cli_fixture.h"

namespace varscope::cli::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

class BrowseTest : public CliTest {
 protected:
  void SetUp() override { Populate(); }
};

TEST_F(BrowseTest, LsListsTheRootsChildrenWithKindDtypeShapeBytesVersion) {
  const CliResult r = Run({"ls"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "KIND     DTYPE    SHAPE               BYTES  VERSION  NAME\n"
      "variable int64    ()                    8 B        2  global_step\n"
      "scope    -        -                       -        -  model/\n"
      "scope    -        -                       -        -  opt/\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(BrowseTest, LsOfAScopeWithTrailingSlashListsItsChildren) {
  const CliResult r = Run({"ls", "model/"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      r.out,
      "KIND     DTYPE    SHAPE               BYTES  VERSION  NAME\n"
      "scope    -        -                       -        -  model/dense/\n"
      "scope    -        -                       -        -  model/emb/\n"
      "scope    -        -                       -        -  "
      "model/my_scope/\n");
}

TEST_F(BrowseTest, LsRecursiveListsEveryVariableUnderTheScope) {
  const CliResult r = Run({"ls", "--recursive", "--names", "model"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "model/dense/bias\n"
            "model/dense/kernel\n"
            "model/emb/part_0\n"
            "model/emb/part_1\n"
            "model/my_scope/weights\n");
}

TEST_F(BrowseTest, LsDepthListsScopesAndVariablesDownToThatLevel) {
  const CliResult r = Run({"ls", "--depth", "2", "--names"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "global_step\n"
            "model/\n"
            "model/dense/\n"
            "model/emb/\n"
            "model/my_scope/\n"
            "opt/\n"
            "opt/model/\n");
}

TEST_F(BrowseTest, LsJsonIsAnArrayOfScopesAndVariablesWithMetadata) {
  const CliResult r = Run({"--json", "ls", "model/dense"});
  EXPECT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["name"], "model/dense/bias");
  EXPECT_EQ(j[0]["kind"], "variable");
  EXPECT_EQ(j[0]["dtype"], "float32");
  EXPECT_EQ(j[0]["shape"], Json::array({2}));
  EXPECT_EQ(j[0]["bytes"], 8);
  EXPECT_EQ(j[0]["version"], 2);
  EXPECT_EQ(j[0]["initializer"]["kind"], "ZEROS");
  EXPECT_EQ(j[0]["initializer"]["seed"], "7");
  EXPECT_EQ(j[1]["name"], "model/dense/kernel");
  const Json scopes = Json::parse(Run({"ls", "--json"}).out);
  EXPECT_EQ(scopes[1], (Json{{"name", "model"}, {"kind", "scope"}}));
}

TEST_F(BrowseTest, LsOfAVariableNameListsThatVariable) {
  const CliResult r = Run({"ls", "--names", "model/dense/kernel"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "model/dense/kernel\n");
}

TEST_F(BrowseTest, LsOfAMissingScopeExitsOneNamingIt) {
  const CliResult r = Run({"ls", "nosuch/scope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("varscope ls: NOT_FOUND: Variable nosuch/scope "
                               "does not exist."));
}

TEST(Ls, EmptyServerListsNothing) {
  ::varscope::testing::TestServer server;
  const CliResult r = RunCli({"--server", server.address(), "ls"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

// A string buffer that calls `hook` once, at the first write.
class HookedBuffer : public std::stringbuf {
 public:
  explicit HookedBuffer(std::function<void()> hook) : hook_(std::move(hook)) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    Fire();
    return std::stringbuf::xsputn(s, n);
  }
  int_type overflow(int_type c) override {
    Fire();
    return std::stringbuf::overflow(c);
  }

 private:
  void Fire() {
    if (hook_) std::exchange(hook_, nullptr)();
  }
  std::function<void()> hook_;
};

TEST(LsStreaming, AHundredThousandChildrenPrintPageByPageAsTheyArrive) {
  ::varscope::testing::TestServer server;
  std::shared_ptr<Client> client = server.NewClient();
  constexpr int kVariables = 100000;
  constexpr int kThreads = 8;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      v1::GetVariableRequest request;
      request.set_mode(v1::CREATE);
      request.set_dtype(v1::DT_FLOAT);
      request.mutable_shape();  // a scalar
      request.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
      for (int i = t; i < kVariables; i += kThreads) {
        request.set_name(absl::StrFormat("big/v%06d", i));
        if (!client->GetVariable(request).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures, 0);

  // The first output deletes the last child. A listing that is printed
  // page by page as it arrives no longer finds it; one read whole before
  // printing would still print it.
  HookedBuffer buffer([&] {
    EXPECT_THAT(client->Delete(absl::StrFormat("big/v%06d", kVariables - 1),
                               /*recursive=*/false),
                ::varscope::testing::IsOk());
  });
  std::ostream out(&buffer);
  const CliResult r = RunCli(
      {"--server", server.address(), "ls", "big", "--names"}, "", {}, &out);
  EXPECT_EQ(r.code, 0) << r.err;
  const std::string text = buffer.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), kVariables - 1);
  EXPECT_TRUE(absl::StartsWith(text, "big/v000000\nbig/v000001\n"));
  EXPECT_TRUE(absl::EndsWith(text, "big/v099998\n"));
  EXPECT_THAT(text, Not(HasSubstr("big/v099999")));
}

TEST_F(BrowseTest, TreeShowsScopesWithCountsAndBytesAndVariables) {
  const CliResult r = Run({"tree"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "(root)  (7 variables, 136 B)\n"
            "├── global_step  int64 ()  8 B\n"
            "├── model/  (5 variables, 104 B)\n"
            "│   ├── dense/  (2 variables, 32 B)\n"
            "│   │   ├── bias  float32 (2,)  8 B\n"
            "│   │   └── kernel  float32 (3, 2)  24 B\n"
            "│   ├── emb/  (2 variables, 32 B)\n"
            "│   │   ├── part_0  float32 (2, 2)  16 B\n"
            "│   │   └── part_1  float32 (2, 2)  16 B\n"
            "│   └── my_scope/  (1 variable, 40 B)\n"
            "│       └── weights  float32 (10, 1)  40 B\n"
            "└── opt/  (1 variable, 24 B)\n"
            "    └── model/  (1 variable, 24 B)\n"
            "        └── dense/  (1 variable, 24 B)\n"
            "            └── kernel/  (1 variable, 24 B)\n"
            "                └── Adam  float32 (3, 2)  24 B\n");
}

TEST_F(BrowseTest, TreeDepthPrintsThatManyLevelsAndCountsEverything) {
  const CliResult r = Run({"tree", "model", "--depth", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "model/  (5 variables, 104 B)\n"
            "├── dense/  (2 variables, 32 B)\n"
            "├── emb/  (2 variables, 32 B)\n"
            "└── my_scope/  (1 variable, 40 B)\n");
}

TEST_F(BrowseTest, TreeJsonNestsScopesAndVariables) {
  const CliResult r = Run({"tree", "--json", "model/dense"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out),
            Json::parse(R"({"name": "model/dense", "kind": "scope",
              "variables": 2, "bytes": 32, "children": [
              {"name": "model/dense/bias", "kind": "variable",
               "dtype": "float32", "shape": [2], "bytes": 8, "version": 2},
              {"name": "model/dense/kernel", "kind": "variable",
               "dtype": "float32", "shape": [3, 2], "bytes": 24,
               "version": 2}]})"));
}

TEST_F(BrowseTest, DuListsEveryScopeLargestFirst) {
  const CliResult r = Run({"du"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "     BYTES  VARIABLES  SCOPE\n"
            "     136 B          7  (root)\n"
            "     104 B          5  model\n"
            "      40 B          1  model/my_scope\n"
            "      32 B          2  model/dense\n"
            "      32 B          2  model/emb\n"
            "      24 B          1  opt\n"
            "      24 B          1  opt/model\n"
            "      24 B          1  opt/model/dense\n"
            "      24 B          1  opt/model/dense/kernel\n");
}

TEST_F(BrowseTest, DuJsonWithDepthGivesScopesDownToThatLevel) {
  const CliResult r = Run({"du", "--json", "--depth", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out), Json::parse(R"([
      {"scope": "", "bytes": 136, "variables": 7},
      {"scope": "model", "bytes": 104, "variables": 5},
      {"scope": "opt", "bytes": 24, "variables": 1}])"));
}

TEST_F(BrowseTest, DuOfAMissingScopeExitsOne) {
  EXPECT_EQ(Run({"du", "nosuch"}).code, 1);
}

TEST_F(BrowseTest, FindStarMatchesWithinOneSegment) {
  CliResult r = Run({"find", "--names", "model/*/weights"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "model/my_scope/weights\n");
  r = Run({"find", "*/weights"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "varscope find: NOT_FOUND: No variable matches */weights\n");
}

TEST_F(BrowseTest, FindDoubleStarMatchesAcrossSegments) {
  CliResult r = Run({"find", "--names", "**/dense/**"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "model/dense/bias\n"
            "model/dense/kernel\n"
            "opt/model/dense/kernel/Adam\n");
  r = Run({"find", "opt/**/Adam*"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "KIND     DTYPE    SHAPE               BYTES  VERSION  NAME\n"
            "variable float32  (3, 2)               24 B        2  "
            "opt/model/dense/kernel/Adam\n");
}

TEST_F(BrowseTest, FindQuestionMarkMatchesOneCharacter) {
  const CliResult r = Run({"find", "--json", "model/emb/part_?"});
  EXPECT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["name"], "model/emb/part_0");
  EXPECT_EQ(j[0]["slice"]["full_name"], "model/emb");
  EXPECT_EQ(j[1]["name"], "model/emb/part_1");
}

}  // namespace
}  // namespace varscope::cli::testing
