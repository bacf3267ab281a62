# Writes OUTPUT from INPUT (configure_file) with VARSCOPE_VERSION and the
# git commit of SOURCE_DIR ("unknown" outside a git checkout, "-dirty" when
# the tree has uncommitted changes). Run at every build (cmake -P); the file
# is only rewritten when its text changes, so nothing rebuilds needlessly.
execute_process(
  COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
  OUTPUT_VARIABLE VARSCOPE_GIT_COMMIT
  OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE result
  ERROR_QUIET)
if(NOT result EQUAL 0 OR VARSCOPE_GIT_COMMIT STREQUAL "")
  set(VARSCOPE_GIT_COMMIT unknown)
else()
  execute_process(
    COMMAND git -C "${SOURCE_DIR}" diff --quiet HEAD --
    RESULT_VARIABLE dirty
    ERROR_QUIET)
  if(NOT dirty EQUAL 0)
    string(APPEND VARSCOPE_GIT_COMMIT "-dirty")
  endif()
endif()
configure_file("${INPUT}" "${OUTPUT}" @ONLY)
