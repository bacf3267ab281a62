// Status helpers shared by every Varscope module.
#ifndef VARSCOPE_COMMON_STATUS_H_
#define VARSCOPE_COMMON_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define VS_STATUS_CONCAT_INNER_(a, b) a##b
#define VS_STATUS_CONCAT_(a, b) VS_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function if it is not OK.
#define VS_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status vs_status_ = (expr);      \
    if (!vs_status_.ok()) return vs_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, otherwise moves the value into `lhs`, which may be
// a declaration (`VS_ASSIGN_OR_RETURN(auto x, F());`).
#define VS_ASSIGN_OR_RETURN(lhs, rexpr)                                     \
  VS_ASSIGN_OR_RETURN_IMPL_(VS_STATUS_CONCAT_(vs_statusor_, __LINE__), lhs, \
                            rexpr)

#define VS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)    \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // VARSCOPE_COMMON_STATUS_H_
