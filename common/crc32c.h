// CRC-32C (Castagnoli): the store checks every chunk with it at start-up, and
// TensorFlow checkpoints checksum their tensors and blocks with it.
#ifndef VARSCOPE_COMMON_CRC32C_H_
#define VARSCOPE_COMMON_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace varscope {

// The CRC-32C of `data` following `crc`, the CRC-32C of what came before
// (0 for nothing). Uses the CPU's CRC32 instruction (SSE4.2) when it has it:
// about ten times faster than the table-driven RocksDB build of Debian.
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

}  // namespace varscope

#endif  // VARSCOPE_COMMON_CRC32C_H_
