#include "bench/connection.h"

#include <cstring>

namespace varscope::bench {

absl::Status Connection::PrepareTable(const std::string& key, int64_t rows,
                                      int64_t width) {
  return absl::UnimplementedError("This store has no row tables");
}

absl::Status Connection::Gather(const std::string& key,
                                const std::vector<int64_t>& indices) {
  return absl::UnimplementedError("This store has no row gather");
}

absl::Status Connection::Scatter(const std::string& key,
                                 const std::vector<int64_t>& indices,
                                 const std::string& rows) {
  return absl::UnimplementedError("This store has no row scatter");
}

absl::Status Connection::SparseAdagrad(const std::string& key,
                                       const std::vector<int64_t>& indices,
                                       const std::string& grads) {
  return absl::UnimplementedError("This store has no optimizer");
}

void AddFloats(const std::string& delta, std::string& value) {
  const size_t n = value.size() / sizeof(float);
  const char* in = delta.data();
  char* out = value.data();
  for (size_t i = 0; i < n; ++i) {
    float a, b;
    std::memcpy(&a, out + i * sizeof(float), sizeof(float));
    std::memcpy(&b, in + i * sizeof(float), sizeof(float));
    a += b;
    std::memcpy(out + i * sizeof(float), &a, sizeof(float));
  }
}

}  // namespace varscope::bench
