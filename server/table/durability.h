// When an acknowledged update is on disk: the server's durability modes.
#ifndef VARSCOPE_SERVER_TABLE_DURABILITY_H_
#define VARSCOPE_SERVER_TABLE_DURABILITY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace varscope::server {

struct Durability {
  enum class Mode {
    // Every change is in RocksDB's write-ahead log before it is
    // acknowledged: it survives a crash of the server process, not a power
    // loss.
    kWal,
    // As kWal, and the log is fsynced (one fsync per group of concurrent
    // writes) before the acknowledgement: it survives a power loss.
    kSync,
    // Changes are applied in memory and acknowledged at once; every
    // `interval` (and at a clean shutdown) everything changed since the last
    // write is written in one atomic, fsynced store write. A crash loses the
    // changes of at most the last interval (plus the time that write takes),
    // and the store always holds the table as of one moment.
    kInterval,
  };
  // Default: kWal.
  Mode mode = Mode::kWal;
  // kInterval only: the time between two store writes. Default: 0.
  absl::Duration interval = absl::ZeroDuration();
};

// Parses "wal", "sync" or "interval=DURATION" (absl::ParseDuration's
// syntax, e.g. "interval=200ms"; at least 1ms). INVALID_ARGUMENT otherwise.
absl::StatusOr<Durability> ParseDurability(absl::string_view text);

// The text ParseDurability reads back.
std::string DurabilityToString(const Durability& durability);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_TABLE_DURABILITY_H_
