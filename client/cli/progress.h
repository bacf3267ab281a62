// A one-line progress display for long transfers, redrawn in place with
// '\r' on a terminal.
#ifndef VARSCOPE_CLIENT_CLI_PROGRESS_H_
#define VARSCOPE_CLIENT_CLI_PROGRESS_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/time/time.h"

namespace varscope::cli {

// "\rimport [#####---------------]  25% 3/12 variables, 1.5 MiB" when the
// total is known, "\rexport 3 variables, 1.5 MiB" otherwise. Draws nothing
// when disabled. Thread-compatible.
class Progress {
 public:
  // `total`: the number of items, or 0 if unknown. `out` is not owned.
  Progress(std::ostream* out, bool enabled, std::string verb, int64_t total);

  // One more item of `bytes` is done. Redraws at most every 100 ms.
  void Add(int64_t bytes);
  // Draws the final state and ends the line, if anything was drawn.
  void Finish();

 private:
  void Draw();

  std::ostream* const out_;
  const bool enabled_;
  const std::string verb_;
  const int64_t total_;
  int64_t items_ = 0;
  int64_t bytes_ = 0;
  absl::Time last_draw_ = absl::InfinitePast();
};

}  // namespace varscope::cli

#endif  // VARSCOPE_CLIENT_CLI_PROGRESS_H_
