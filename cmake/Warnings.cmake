# varscope_warnings(<target>): the project's compiler warnings on <target>'s
# own sources (PRIVATE, so users of an installed library keep their own
# flags), as errors when VARSCOPE_WERROR is on (CI turns it on; off by
# default so that a newer compiler's new warnings do not break a user's
# build). Unused parameters are the norm in gRPC service overrides, and
# designated initializers leave fields out on purpose.
function(varscope_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
    $<$<BOOL:${VARSCOPE_WERROR}>:-Werror>)
endfunction()
