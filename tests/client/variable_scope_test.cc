// TensorFlow's variable_scope rules in ScopeStack (no server needed).
#include "client/variable_scope.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace varscope {
namespace {

using ::varscope::testing::StatusIs;

ScopeArgs Named(std::string name, std::optional<Reuse> reuse = std::nullopt) {
  ScopeArgs args;
  args.name = std::move(name);
  args.reuse = reuse;
  return args;
}

ScopeArgs Default(std::string default_name) {
  ScopeArgs args;
  args.default_name = std::move(default_name);
  return args;
}

ScopeArgs Captured(std::shared_ptr<const VariableScope> scope,
                   std::optional<Reuse> reuse = std::nullopt) {
  ScopeArgs args;
  args.scope = std::move(scope);
  args.reuse = reuse;
  return args;
}

TEST(ScopeStack, RootIsUnnamedCreateOnlyFloat32) {
  ScopeStack stack;
  EXPECT_EQ(stack.current()->name, "");
  EXPECT_EQ(stack.current()->reuse, Reuse::kFalse);
  EXPECT_EQ(stack.current()->dtype, v1::DT_FLOAT);
}

TEST(ScopeStack, NamesNestWithSlashes) {
  ScopeStack stack;
  VS_ASSERT_OK(stack.Enter(Named("a")).status());
  VS_ASSERT_OK_AND_ASSIGN(auto b, stack.Enter(Named("b/c")));
  EXPECT_EQ(b->name, "a/b/c");
  VS_ASSERT_OK(stack.Exit());
  EXPECT_EQ(stack.current()->name, "a");
  VS_ASSERT_OK(stack.Exit());
  EXPECT_THAT(stack.Exit(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     "No variable scope to exit"));
}

TEST(ScopeStack, EmptyNameIsTheRootOnlyAtTheRoot) {
  ScopeStack stack;
  VS_ASSERT_OK_AND_ASSIGN(auto root, stack.Enter(Named("", Reuse::kTrue)));
  EXPECT_EQ(root->name, "");
  EXPECT_EQ(root->reuse, Reuse::kTrue);
  VS_ASSERT_OK(stack.Enter(Named("a")).status());
  EXPECT_THAT(stack.Enter(Named("")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ScopeStack, ReuseTrueIsStickyInChildScopes) {
  ScopeStack stack;
  VS_ASSERT_OK(stack.Enter(Named("a", Reuse::kTrue)).status());
  VS_ASSERT_OK_AND_ASSIGN(auto child, stack.Enter(Named("b", Reuse::kFalse)));
  EXPECT_EQ(child->reuse, Reuse::kTrue);
  VS_ASSERT_OK_AND_ASSIGN(auto grandchild, stack.Enter(Named("c")));
  EXPECT_EQ(grandchild->reuse, Reuse::kTrue);
}

TEST(ScopeStack, ReuseFalseAndNoneInherit) {
  ScopeStack stack;
  VS_ASSERT_OK(stack.Enter(Named("a", Reuse::kAutoReuse)).status());
  VS_ASSERT_OK_AND_ASSIGN(auto b, stack.Enter(Named("b", Reuse::kFalse)));
  EXPECT_EQ(b->reuse, Reuse::kAutoReuse);
  VS_ASSERT_OK_AND_ASSIGN(auto c, stack.Enter(Named("c")));
  EXPECT_EQ(c->reuse, Reuse::kAutoReuse);
}

TEST(ScopeStack, AutoReuseUnderTrueStaysAutoReuse) {
  ScopeStack stack;
  VS_ASSERT_OK(stack.Enter(Named("a", Reuse::kTrue)).status());
  VS_ASSERT_OK_AND_ASSIGN(auto b, stack.Enter(Named("b", Reuse::kAutoReuse)));
  EXPECT_EQ(b->reuse, Reuse::kAutoReuse);
}

TEST(ScopeStack, ReenteredCapturedScopeKeepsItsOwnReuse) {
  ScopeStack stack;
  VS_ASSERT_OK_AND_ASSIGN(auto captured, stack.Enter(Named("model")));
  VS_ASSERT_OK(stack.Exit());
  VS_ASSERT_OK(stack.Enter(Named("outer", Reuse::kTrue)).status());
  VS_ASSERT_OK_AND_ASSIGN(auto again, stack.Enter(Captured(captured)));
  EXPECT_EQ(again->name, "model");  // not outer/model
  EXPECT_EQ(again->reuse, Reuse::kFalse);
  VS_ASSERT_OK(stack.Exit());
  VS_ASSERT_OK_AND_ASSIGN(auto reused,
                          stack.Enter(Captured(captured, Reuse::kTrue)));
  EXPECT_EQ(reused->reuse, Reuse::kTrue);
  EXPECT_EQ(captured->reuse, Reuse::kFalse);  // a copy was entered
}

TEST(ScopeStack, ReuseVariablesTurnsReuseOnForLaterChildren) {
  ScopeStack stack;
  VS_ASSERT_OK_AND_ASSIGN(auto a, stack.Enter(Named("a")));
  stack.current()->ReuseVariables();
  EXPECT_EQ(a->reuse, Reuse::kTrue);
  VS_ASSERT_OK_AND_ASSIGN(auto b, stack.Enter(Named("b")));
  EXPECT_EQ(b->reuse, Reuse::kTrue);
}

TEST(ScopeStack, DefaultNameUniquifiesAsNameName1Name2) {
  ScopeStack stack;
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) {
    VS_ASSERT_OK_AND_ASSIGN(auto s, stack.Enter(Default("layer")));
    names.push_back(s->name);
    VS_ASSERT_OK(stack.Exit());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("layer", "layer_1", "layer_2"));
}

TEST(ScopeStack, ExplicitNamesCountForDefaultNames) {
  ScopeStack stack;
  VS_ASSERT_OK(stack.Enter(Named("bar")).status());
  VS_ASSERT_OK(stack.Exit());
  VS_ASSERT_OK_AND_ASSIGN(auto s, stack.Enter(Default("bar")));
  EXPECT_EQ(s->name, "bar_1");
}

TEST(ScopeStack, ChildCountersResetWhenTheParentIsLeft) {
  ScopeStack stack;
  std::vector<std::string> names;
  for (int i = 0; i < 2; ++i) {
    VS_ASSERT_OK(stack.Enter(Named("foo")).status());
    VS_ASSERT_OK_AND_ASSIGN(auto s, stack.Enter(Default("bar")));
    names.push_back(s->name);
    VS_ASSERT_OK(stack.Exit());
    VS_ASSERT_OK(stack.Exit());
  }
  EXPECT_THAT(names, ::testing::ElementsAre("foo/bar", "foo/bar"));
}

TEST(ScopeStack, ArgumentErrorsUseTensorFlowTexts) {
  ScopeStack stack;
  EXPECT_THAT(stack.Enter(ScopeArgs()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "If default_name is None then name_or_scope is "
                       "required"));
  ScopeArgs args = Default("x");
  args.reuse = Reuse::kTrue;
  EXPECT_THAT(stack.Enter(args),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "reuse=True cannot be used without a name_or_scope"));
  EXPECT_THAT(stack.Enter(Named("a b")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(stack.current()->name, "");  // nothing was entered
}

TEST(ScopeStack, DefaultsInheritAndOverride) {
  ScopeStack stack;
  ScopeArgs outer = Named("a");
  outer.dtype = v1::DT_DOUBLE;
  outer.initializer = v1::Initializer();
  outer.initializer->set_kind(v1::Initializer::ONES);
  VS_ASSERT_OK(stack.Enter(outer).status());
  ScopeArgs inner = Named("b");
  inner.dtype = v1::DT_INT32;
  VS_ASSERT_OK_AND_ASSIGN(auto b, stack.Enter(inner));
  EXPECT_EQ(b->dtype, v1::DT_INT32);
  ASSERT_TRUE(b->initializer.has_value());
  EXPECT_EQ(b->initializer->kind(), v1::Initializer::ONES);
  EXPECT_FALSE(b->partitioner.has_value());
}

}  // namespace
}  // namespace varscope
