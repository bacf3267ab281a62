#include "server/service/offload.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace varscope::server {

void Offload(Executor& executor, std::function<absl::Status()> run,
             std::function<void(const absl::Status&)> finish,
             absl::string_view queued) {
  // Shared: exactly one of the two tasks below calls it.
  auto done = std::make_shared<std::function<void(const absl::Status&)>>(
      std::move(finish));
  const bool queued_ok = executor.Submit(
      [run = std::move(run), done] { (*done)(run()); },
      [done] { (*done)(absl::CancelledError("The server stopped")); });
  if (!queued_ok) {
    (*done)(absl::ResourceExhaustedError(absl::StrCat(
        "The server is busy: ", queued, " wait already; retry later")));
  }
}

}  // namespace varscope::server
