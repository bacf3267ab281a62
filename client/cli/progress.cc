#include "client/cli/progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/format.h"

namespace varscope::cli {

constexpr int kBarWidth = 20;

Progress::Progress(std::ostream* out, bool enabled, std::string verb,
                   int64_t total)
    : out_(out), enabled_(enabled), verb_(std::move(verb)), total_(total) {}

void Progress::Add(int64_t bytes) {
  ++items_;
  bytes_ += bytes;
  const absl::Time now = absl::Now();
  if (!enabled_ || now - last_draw_ < absl::Milliseconds(100)) return;
  last_draw_ = now;
  Draw();
}

void Progress::Finish() {
  if (!enabled_ || items_ == 0) return;
  Draw();
  *out_ << "\n";
  out_->flush();
}

void Progress::Draw() {
  std::string line = absl::StrCat("\r", verb_, " ");
  if (total_ > 0) {
    const int64_t done = std::min(items_, total_);
    const int filled = static_cast<int>(done * kBarWidth / total_);
    absl::StrAppend(&line, "[", std::string(filled, '#'),
                    std::string(kBarWidth - filled, '-'), "] ",
                    absl::StrFormat("%3d%% ", done * 100 / total_), done, "/",
                    VariablesText(total_));
  } else {
    absl::StrAppend(&line, VariablesText(items_));
  }
  absl::StrAppend(&line, ", ", HumanBytes(bytes_));
  *out_ << line << "\033[K";  // clear what a longer line left
  out_->flush();
}

}  // namespace varscope::cli
