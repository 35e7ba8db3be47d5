# `cmake --install`: the SDK (libtrustwarden, its headers, find_package(trustwarden) with the
# imported target trustwarden::sdk, and trustwarden.pc) and the `trustwarden` CLI.
# Included from the top-level CMakeLists.txt once every target exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(tw_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/trustwarden)

# The SDK. Its static layers live inside the shared library and its headers include only
# the C++ standard library, so the export names no other target.
install(TARGETS trustwarden_sdk EXPORT trustwardenTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/trustwarden
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(EXPORT trustwardenTargets NAMESPACE trustwarden:: FILE trustwardenTargets.cmake
  DESTINATION ${tw_cmake_dir})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/trustwardenConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/trustwardenConfig.cmake INSTALL_DESTINATION ${tw_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/trustwardenConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/trustwardenConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/trustwardenConfigVersion.cmake DESTINATION ${tw_cmake_dir})

# pkg-config: paths relative to the .pc file's own directory, so the installed tree can be
# moved (the prefix is chosen at install time, `cmake --install --prefix`, not here).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(tw_pc_prefix "${CMAKE_INSTALL_PREFIX}")
  set(tw_pc_libdir "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH tw_pc_up "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  set(tw_pc_prefix "\${pcfiledir}/${tw_pc_up}")
  set(tw_pc_libdir "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(tw_pc_includedir "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(tw_pc_includedir "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/trustwarden.pc.in ${PROJECT_BINARY_DIR}/cmake/trustwarden.pc
  @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cmake/trustwarden.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The CLI links libtrustwarden (for `trustwarden demo`) and finds it beside itself.
if(NOT IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set_target_properties(trustwarden PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
endif()
install(TARGETS trustwarden RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Its manual page and shell completion (src/cli: generated from the command tree).
install(FILES ${PROJECT_BINARY_DIR}/share/trustwarden.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_BINARY_DIR}/share/trustwarden.bash
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME trustwarden)
install(FILES ${PROJECT_BINARY_DIR}/share/_trustwarden
  DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
