// GoogleTest matchers for absl::Status and absl::StatusOr (test-only).
#ifndef VARSCOPE_COMMON_STATUS_MATCHERS_H_
#define VARSCOPE_COMMON_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace varscope::testing {

inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Matches a Status or StatusOr whose code is `code` and whose message
// matches `message_matcher` (a string or a gMock string matcher).
MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + ::testing::PrintToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::Matches(message_matcher)(std::string(status.message()));
}

// Matches a Status or StatusOr whose code is `code`, whatever the message.
inline auto StatusIs(absl::StatusCode code) {
  return StatusIs(code, ::testing::_);
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "whose status is " << status;
  return status.ok();
}

// Matches an OK StatusOr whose value matches `value_matcher`.
MATCHER_P(IsOkAndHolds, value_matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "whose status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace varscope::testing

#define VS_ASSERT_OK(expr) ASSERT_THAT((expr), ::varscope::testing::IsOk())
#define VS_EXPECT_OK(expr) EXPECT_THAT((expr), ::varscope::testing::IsOk())

// Declares `lhs` from a StatusOr expression, failing the test on error.
#define VS_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  VS_ASSERT_OK_AND_ASSIGN_IMPL_(            \
      VS_STATUS_MATCHERS_CONCAT_(vs_test_statusor_, __LINE__), lhs, rexpr)
#define VS_STATUS_MATCHERS_CONCAT_INNER_(a, b) a##b
#define VS_STATUS_MATCHERS_CONCAT_(a, b) VS_STATUS_MATCHERS_CONCAT_INNER_(a, b)
#define VS_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  ASSERT_TRUE(statusor.ok()) << statusor.status();          \
  lhs = std::move(statusor).value()

#endif  // VARSCOPE_COMMON_STATUS_MATCHERS_H_
