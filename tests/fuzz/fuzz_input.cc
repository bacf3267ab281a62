#include "tests/fuzz/fuzz_input.h"

#include <cstdio>
#include <cstdlib>

namespace varscope::fuzz {

void FuzzFail(absl::string_view what) {
  fprintf(stderr, "fuzz invariant broken: %.*s\n",
          static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace varscope::fuzz
