// Hands a call's blocking work (a store write, an fsync, a wait) from its
// gRPC reaction to an Executor, so that the reaction returns at once.
#ifndef VARSCOPE_SERVER_SERVICE_OFFLOAD_H_
#define VARSCOPE_SERVER_SERVICE_OFFLOAD_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/base/executor.h"

namespace varscope::server {

// Runs `run` on `executor`, then calls `finish` with its status (on the
// executor's thread). `finish` gets instead, at once:
// RESOURCE_EXHAUSTED "The server is busy: <queued> wait already; retry
// later" if the executor's queue is full (`queued` names its bound, e.g.
// "4096 calls"), or later CANCELLED "The server stopped" if the executor
// stops before `run` starts.
void Offload(Executor& executor, std::function<absl::Status()> run,
             std::function<void(const absl::Status&)> finish,
             absl::string_view queued);

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_SERVICE_OFFLOAD_H_
