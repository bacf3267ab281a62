# The CTest install_client: `cmake --install BUILD_DIR --prefix` a fresh
# prefix under WORK_DIR, then configure, build and run the project in
# PROJECT_DIR (tests/install/, a project of its own that sees nothing of
# this tree but the prefix) with find_package(varscope CONFIG).
#
#   cmake -DBUILD_DIR=... -DWORK_DIR=... -DPROJECT_DIR=... -DGENERATOR=...
#         -DCXX_COMPILER=... [-DCXX_COMPILER_LAUNCHER=...] -P check_install.cmake
foreach(var BUILD_DIR WORK_DIR PROJECT_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_install.cmake: -D${var}=... is missing")
  endif()
endforeach()

# Runs the command, failing the test with its output if it fails.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "${command}\nfailed (${result}):\n${out}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
set(launcher)
if(CXX_COMPILER_LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_COMPILER_LAUNCHER})
endif()
run(${CMAKE_COMMAND} -S ${PROJECT_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    ${launcher})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
# No server there: the call must come back UNAVAILABLE (see main.cc).
run(${WORK_DIR}/build/app unix:${WORK_DIR}/no-server.sock)
message(STATUS "installed, built and ran against ${prefix}")
