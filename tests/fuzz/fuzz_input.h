// Structured fuzzing helpers: the input bytes read as a program (in the
// style of LLVM's FuzzedDataProvider), and the failure report.
#ifndef VARSCOPE_TESTS_FUZZ_FUZZ_INPUT_H_
#define VARSCOPE_TESTS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "absl/strings/string_view.h"

namespace varscope::fuzz {

// Reads values off the front of a fuzz input. Once the bytes run out every
// value is zero (the first choice), so every input is a finite program.
// Thread-compatible.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return size_ == 0; }
  size_t remaining() const { return size_; }

  // The next sizeof(T) bytes, little-endian, as T.
  template <typename T>
  T Integral() {
    static_assert(std::is_integral_v<T>);
    using U = std::make_unsigned_t<T>;
    U value = 0;
    for (size_t i = 0; i < sizeof(T) && size_ > 0; ++i) {
      value |= static_cast<U>(static_cast<U>(*data_) << (8 * i));
      ++data_;
      --size_;
    }
    return static_cast<T>(value);
  }

  // A value in [lo, hi], from as few bytes as the range needs.
  template <typename T>
  T InRange(T lo, T hi) {
    const uint64_t range =
        static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
    uint64_t value = 0;
    for (uint64_t seen = 0; seen < range && size_ > 0;
         seen = seen << 8 | 0xff) {
      value = value << 8 | *data_++;
      --size_;
    }
    if (range != UINT64_MAX) value %= range + 1;
    return static_cast<T>(static_cast<uint64_t>(lo) + value);
  }

  bool Bool() { return (Integral<uint8_t>() & 1) != 0; }

  // One of `choices`.
  template <typename T>
  T Pick(std::initializer_list<T> choices) {
    return choices.begin()[InRange<size_t>(0, choices.size() - 1)];
  }

  // Up to `max_size` bytes, the length read first.
  std::string Bytes(size_t max_size) {
    const size_t n = std::min(InRange<size_t>(0, max_size), size_);
    std::string out(reinterpret_cast<const char*>(data_), n);
    data_ += n;
    size_ -= n;
    return out;
  }

  // Every byte left.
  std::string Rest() { return Bytes(size_); }

  // A double: often a special value, else the next 8 bytes' bit pattern.
  double Double() {
    switch (InRange(0, 7)) {
      case 0:
        return 0;
      case 1:
        return 1;
      case 2:
        return -1;
      case 3:
        return 0.5;
      case 4:
        return 1e300;
      default: {
        const uint64_t bits = Integral<uint64_t>();
        double value;
        memcpy(&value, &bits, sizeof(value));
        return value;  // may be NaN, infinite or subnormal
      }
    }
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

// Prints "fuzz invariant broken: <what>" and aborts (the driver then saves
// the input that broke it).
[[noreturn]] void FuzzFail(absl::string_view what);

}  // namespace varscope::fuzz

#endif  // VARSCOPE_TESTS_FUZZ_FUZZ_INPUT_H_
