// Counter-based random numbers: the same (seed, index) gives the same bits on
// every run and every machine, and any element of a random tensor can be
// drawn without drawing the ones before it.
#ifndef VARSCOPE_COMMON_RANDOM_H_
#define VARSCOPE_COMMON_RANDOM_H_

#include <array>
#include <cmath>
#include <cstdint>

namespace varscope {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The Philox4x32-10 bijection (Salmon, Moraes, Dror, Shaw: "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011): 128 random bits for `counter` under
// `key`. Matches Random123's known-answer vectors.
constexpr PhiloxCounter Philox4x32(PhiloxCounter counter, PhiloxKey key) {
  constexpr uint32_t kMul0 = 0xD2511F53u;
  constexpr uint32_t kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t{kMul0} * counter[0];
    const uint64_t p1 = uint64_t{kMul1} * counter[2];
    const auto hi0 = static_cast<uint32_t>(p0 >> 32);
    const auto lo0 = static_cast<uint32_t>(p0);
    const auto hi1 = static_cast<uint32_t>(p1 >> 32);
    const auto lo1 = static_cast<uint32_t>(p1);
    counter = {hi1 ^ counter[1] ^ key[0], lo1, hi0 ^ counter[3] ^ key[1], lo0};
    key = {key[0] + kWeyl0, key[1] + kWeyl1};
  }
  return counter;
}

// splitmix64's finalizer: a bijection of 64-bit values whose outputs of
// neighbouring inputs look unrelated (hashes keys onto shards and stripes,
// and mixes seeds with keys).
constexpr uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The natural logarithm of `x`, computed with +, -, *, / and frexp only, so
// that it gives the same bits on every IEEE 754 machine (libm's log may
// differ in the last place between platforms). Accurate to a few ulp.
// REQUIRES: x is positive and finite.
inline double PortableLog(double x) {
  constexpr double kLn2 = 0.693147180559945309417232121458176568;
  constexpr double kSqrtHalf = 0.707106781186547524400844362104849039;
  int exponent = 0;
  double m = std::frexp(x, &exponent);  // x = m * 2^exponent, m in [0.5, 1)
  if (m < kSqrtHalf) {
    m *= 2;
    --exponent;
  }
  // log(m) = 2 atanh(f) = 2 (f + f^3/3 + f^5/5 + ...), |f| <= 0.1716, so
  // twelve terms reach double precision.
  const double f = (m - 1) / (m + 1);
  const double f2 = f * f;
  double series = 0;
  for (int k = 11; k >= 0; --k) series = series * f2 + 1.0 / (2 * k + 1);
  return exponent * kLn2 + 2 * f * series;
}

// Random draws addressed by (index, attempt): a pure function of the seed and
// the address, so element `index` of a tensor is drawn independently of the
// others. `attempt` numbers the redraws of rejection samplers. A value type;
// thread-safe (all methods are const and stateless).
class CounterRng {
 public:
  explicit CounterRng(uint64_t seed)
      : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)} {}

  // 128 random bits for (index, attempt), as two 64-bit words.
  std::array<uint64_t, 2> Bits(uint64_t index, uint32_t attempt) const {
    const PhiloxCounter out =
        Philox4x32({static_cast<uint32_t>(index),
                    static_cast<uint32_t>(index >> 32), attempt, 0},
                   key_);
    return {uint64_t{out[0]} | uint64_t{out[1]} << 32,
            uint64_t{out[2]} | uint64_t{out[3]} << 32};
  }

  // Uniform in [0, 1) with `precision` random bits: a multiple of
  // 2^-precision. REQUIRES: 1 <= precision <= 53.
  static double ToUnit(uint64_t bits, int precision) {
    return std::ldexp(static_cast<double>(bits >> (64 - precision)),
                      -precision);
  }

  // A standard normal draw for `index` (Marsaglia's polar method).
  double Normal(uint64_t index) const {
    for (uint32_t attempt = 0;; ++attempt) {
      double z0, z1;
      if (NormalPair(index, attempt, &z0, &z1)) return z0;
    }
  }

  // A standard normal draw for `index` conditioned on |z| < bound, by
  // rejection. REQUIRES: bound > 0.
  double TruncatedNormal(uint64_t index, double bound) const {
    for (uint32_t attempt = 0;; ++attempt) {
      double z0, z1;
      if (!NormalPair(index, attempt, &z0, &z1)) continue;
      if (std::fabs(z0) < bound) return z0;
      if (std::fabs(z1) < bound) return z1;
    }
  }

 private:
  // One round of the polar method: on acceptance sets two independent
  // standard normals and returns true.
  bool NormalPair(uint64_t index, uint32_t attempt, double* z0,
                  double* z1) const {
    const std::array<uint64_t, 2> bits = Bits(index, attempt);
    const double u = 2 * ToUnit(bits[0], 53) - 1;
    const double v = 2 * ToUnit(bits[1], 53) - 1;
    const double s = u * u + v * v;
    if (s <= 0 || s >= 1) return false;
    const double factor = std::sqrt(-2 * PortableLog(s) / s);
    *z0 = u * factor;
    *z1 = v * factor;
    return true;
  }

  PhiloxKey key_;
};

}  // namespace varscope

#endif  // VARSCOPE_COMMON_RANDOM_H_
