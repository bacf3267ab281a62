// Learning-rate schedules against TensorFlow's formulas, written here in
// float64 from tf.compat.v1.train's documentation.
#include "common/learning_rate.h"

#include <cmath>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace varscope {
namespace {

using ::varscope::testing::StatusIs;

v1::LearningRateSchedule Exponential(double steps, double rate,
                                     bool staircase) {
  v1::LearningRateSchedule s;
  s.mutable_exponential_decay()->set_decay_steps(steps);
  s.mutable_exponential_decay()->set_decay_rate(rate);
  s.mutable_exponential_decay()->set_staircase(staircase);
  return s;
}

v1::LearningRateSchedule Polynomial(double steps, double end, double power,
                                    bool cycle) {
  v1::LearningRateSchedule s;
  auto* p = s.mutable_polynomial_decay();
  p->set_decay_steps(steps);
  p->set_end_learning_rate(end);
  p->set_power(power);
  p->set_cycle(cycle);
  return s;
}

TEST(LearningRate, ExponentialDecayAndItsStaircase) {
  for (double step : {0.0, 1.0, 99.0, 100.0, 101.0, 250.0, 1e6}) {
    EXPECT_DOUBLE_EQ(
        DecayedLearningRate(Exponential(100, 0.96, false), 0.1, step),
        0.1 * std::pow(0.96, step / 100));
    EXPECT_DOUBLE_EQ(
        DecayedLearningRate(Exponential(100, 0.96, true), 0.1, step),
        0.1 * std::pow(0.96, std::floor(step / 100)));
  }
  // The staircase steps exactly at multiples of decay_steps.
  EXPECT_EQ(DecayedLearningRate(Exponential(100, 0.5, true), 1, 99), 1);
  EXPECT_EQ(DecayedLearningRate(Exponential(100, 0.5, true), 1, 100), 0.5);
}

TEST(LearningRate, PiecewiseConstantIncludesEachBoundaryBelow) {
  v1::LearningRateSchedule s;
  auto* p = s.mutable_piecewise_constant();
  for (double b : {100000.0, 110000.0}) p->add_boundaries(b);
  for (double v : {1.0, 0.5, 0.1}) p->add_values(v);
  // values[0] for x <= b[0], values[1] for b[0] < x <= b[1], then values[2].
  EXPECT_EQ(DecayedLearningRate(s, 9, 0), 1.0);
  EXPECT_EQ(DecayedLearningRate(s, 9, 100000), 1.0);
  EXPECT_EQ(DecayedLearningRate(s, 9, 100001), 0.5);
  EXPECT_EQ(DecayedLearningRate(s, 9, 110000), 0.5);
  EXPECT_EQ(DecayedLearningRate(s, 9, 110001), 0.1);
}

TEST(LearningRate, PolynomialDecayWithAndWithoutCycle) {
  auto reference = [](double step, bool cycle) {
    const double lr = 0.1, end = 0.01, steps = 1000, power = 0.5;
    double decay_steps = steps;
    if (cycle) {
      decay_steps *= step == 0 ? 1 : std::ceil(step / steps);
    } else {
      step = std::min(step, steps);
    }
    return (lr - end) * std::pow(1 - step / decay_steps, power) + end;
  };
  for (double step : {0.0, 1.0, 500.0, 999.0, 1000.0, 1001.0, 2000.0, 2500.0}) {
    for (bool cycle : {false, true}) {
      EXPECT_DOUBLE_EQ(
          DecayedLearningRate(Polynomial(1000, 0.01, 0.5, cycle), 0.1, step),
          reference(step, cycle))
          << step << " " << cycle;
    }
  }
  // Edge cases: at decay_steps the end rate; with cycle, at a multiple of
  // decay_steps too, and the next step starts a new cycle.
  EXPECT_DOUBLE_EQ(
      DecayedLearningRate(Polynomial(1000, 0.01, 1, false), 0.1, 1000), 0.01);
  EXPECT_DOUBLE_EQ(
      DecayedLearningRate(Polynomial(1000, 0.01, 1, false), 0.1, 5000), 0.01);
  EXPECT_DOUBLE_EQ(
      DecayedLearningRate(Polynomial(1000, 0.01, 1, true), 0.1, 2000), 0.01);
  EXPECT_DOUBLE_EQ(
      DecayedLearningRate(Polynomial(1000, 0.01, 1, true), 0.1, 2001),
      0.09 * (1 - 2001.0 / 3000) + 0.01);
  EXPECT_DOUBLE_EQ(DecayedLearningRate(Polynomial(1000, 0.01, 1, true), 0.1, 0),
                   0.1);
}

TEST(LearningRate, CosineDecayStopsAtAlpha) {
  v1::LearningRateSchedule s;
  s.mutable_cosine_decay()->set_decay_steps(1000);
  s.mutable_cosine_decay()->set_alpha(0.1);
  for (double step : {0.0, 250.0, 500.0, 1000.0, 4000.0}) {
    const double fraction = std::min(step, 1000.0) / 1000;
    const double cosine = 0.5 * (1 + std::cos(M_PI * fraction));
    EXPECT_DOUBLE_EQ(DecayedLearningRate(s, 0.2, step),
                     0.2 * (0.9 * cosine + 0.1));
  }
  EXPECT_DOUBLE_EQ(DecayedLearningRate(s, 0.2, 1000), 0.02);
}

TEST(LearningRate, BadSchedulesAreRejectedWithTensorFlowsTexts) {
  EXPECT_THAT(ValidateSchedule(Exponential(0, 0.5, false)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "Invalid learning-rate schedule decay_steps: 0 (must "
                       "be positive)"));
  v1::LearningRateSchedule s;
  s.mutable_piecewise_constant()->add_boundaries(10);
  s.mutable_piecewise_constant()->add_values(1);
  EXPECT_THAT(ValidateSchedule(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The length of boundaries should be 1 less than the "
                       "length of values"));
  s.mutable_piecewise_constant()->add_boundaries(5);
  s.mutable_piecewise_constant()->add_values(2);
  s.mutable_piecewise_constant()->add_values(3);
  EXPECT_THAT(ValidateSchedule(s),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "The boundaries of a piecewise constant learning rate "
                       "must increase: 5 follows 10"));
  EXPECT_THAT(ValidateSchedule(v1::LearningRateSchedule()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::StartsWith("A learning-rate schedule needs "
                                             "one of")));
}

}  // namespace
}  // namespace varscope
