#include "common/random.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"

namespace varscope {
namespace {

// Random123's published known-answer vectors for Philox4x32-10.
TEST(Philox4x32, MatchesRandom123KnownAnswers) {
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(Philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                       {0xffffffff, 0xffffffff}),
            (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(Philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                       {0xa4093822, 0x299f31d0}),
            (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(PortableLog, AgreesWithLibmToAFewUlp) {
  for (double x : {1e-300, 1e-30, 2.2e-16, 1e-5, 0.1, 0.5, 0.7071067811865476,
                   0.9999999, 1.0, 1.0000001, 1.5, 2.0, 2.718281828459045, 10.0,
                   12345.678, 1e30, 1e300}) {
    EXPECT_NEAR(PortableLog(x), std::log(x),
                4e-16 * std::max(1.0, std::fabs(std::log(x))))
        << "x = " << x;
  }
  for (int i = 1; i < 100000; ++i) {
    const double x = i / 100000.0;
    ASSERT_NEAR(PortableLog(x), std::log(x),
                1e-15 * std::fabs(std::log(x)) + 1e-300)
        << "x = " << x;
  }
  EXPECT_EQ(PortableLog(1.0), 0.0);
}

TEST(CounterRng, BitsArePureFunctionOfSeedIndexAndAttempt) {
  const CounterRng a(42), b(42), c(43);
  EXPECT_EQ(a.Bits(7, 0), b.Bits(7, 0));
  EXPECT_NE(a.Bits(7, 0), c.Bits(7, 0));
  EXPECT_NE(a.Bits(7, 0), a.Bits(8, 0));
  EXPECT_NE(a.Bits(7, 0), a.Bits(7, 1));
  // The upper half of the index is part of the counter.
  EXPECT_NE(a.Bits(7, 0), a.Bits(7 + (uint64_t{1} << 32), 0));
  // The upper half of the seed is part of the key.
  EXPECT_NE(CounterRng(1).Bits(0, 0),
            CounterRng(1 + (uint64_t{1} << 32)).Bits(0, 0));
}

TEST(CounterRng, ToUnitKeepsRequestedPrecision) {
  EXPECT_EQ(CounterRng::ToUnit(0, 53), 0.0);
  EXPECT_EQ(CounterRng::ToUnit(~uint64_t{0}, 53), 1.0 - std::ldexp(1.0, -53));
  EXPECT_EQ(CounterRng::ToUnit(~uint64_t{0}, 8), 1.0 - std::ldexp(1.0, -8));
  EXPECT_EQ(CounterRng::ToUnit(uint64_t{1} << 63, 11), 0.5);
}

TEST(CounterRng, NormalHasUnitMomentsAndTruncationHoldsItsBound) {
  const CounterRng rng(7);
  constexpr int kN = 400000;
  double sum = 0, sum2 = 0, sum4 = 0;
  double tsum2 = 0;
  for (int i = 0; i < kN; ++i) {
    const double z = rng.Normal(i);
    sum += z;
    sum2 += z * z;
    sum4 += z * z * z * z;
    const double t = rng.TruncatedNormal(i, 2.0);
    ASSERT_LT(std::fabs(t), 2.0);
    tsum2 += t * t;
  }
  EXPECT_NEAR(sum / kN, 0.0, 0.008);
  EXPECT_NEAR(sum2 / kN, 1.0, 0.01);
  EXPECT_NEAR(sum4 / kN, 3.0, 0.06);  // normal kurtosis
  EXPECT_NEAR(std::sqrt(tsum2 / kN), 0.87962566103423978, 0.005);
}

}  // namespace
}  // namespace varscope
