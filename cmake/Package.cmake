# The CMake package of the installed C++ client: after `cmake --install`,
# another project writes
#   find_package(varscope CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE varscope::client)
# (tests/install/ builds one that way). The libraries are static: their
# dependencies (gRPC, Protobuf, Abseil, nlohmann_json) are found again by
# varscopeConfig.cmake.
include(CMakePackageConfigHelpers)
set(VARSCOPE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/varscope)
install(EXPORT varscopeTargets
        NAMESPACE varscope::
        DESTINATION ${VARSCOPE_INSTALL_CMAKEDIR}
        COMPONENT development)
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/varscopeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/varscopeConfig.cmake
  INSTALL_DESTINATION ${VARSCOPE_INSTALL_CMAKEDIR})
# 0.x: a minor release may change the client's API.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/varscopeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/varscopeConfig.cmake
              ${PROJECT_BINARY_DIR}/varscopeConfigVersion.cmake
        DESTINATION ${VARSCOPE_INSTALL_CMAKEDIR}
        COMPONENT development)
