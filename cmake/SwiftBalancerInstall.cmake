# What `cmake --install` puts under the prefix, and the CMake package an engine finds there:
#   include/swiftbalancer/<component>/*.h   every component's public headers (globbed at install
#                                            time, so a new header needs no edit here); the
#                                            headers under <component>/internal/ (the runtime's
#                                            parts, the swift search, the in-process mailbox) are
#                                            seen by the library and its tests only
#   lib/libswiftbalancer_<component>.a      the component libraries
#   bin/swiftbalancer                       the command
#   lib/cmake/SwiftBalancer/                SwiftBalancerConfig.cmake, its version file and the
#                                            exported targets SwiftBalancer::<component>
# Included from the top-level CMakeLists.txt after src/, which records its components in the
# global property SWIFTBALANCER_COMPONENTS.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SWIFTBALANCER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/SwiftBalancer)
get_property(_components GLOBAL PROPERTY SWIFTBALANCER_COMPONENTS)

set(_targets "")
foreach(c IN LISTS _components)
  list(APPEND _targets swiftbalancer_${c})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/swiftbalancer/${c}/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/swiftbalancer/${c}
          FILES_MATCHING PATTERN "*.h" PATTERN "internal" EXCLUDE
          # The demo's CUDA build (demo/cuda) needs the device library, which is not installed.
          PATTERN "cuda" EXCLUDE)
endforeach()
# The aggregate of the library components, as SwiftBalancer::swiftbalancer.
list(APPEND _targets swiftbalancer)

install(TARGETS ${_targets} EXPORT SwiftBalancerTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS swiftbalancer_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT SwiftBalancerTargets NAMESPACE SwiftBalancer::
        DESTINATION ${SWIFTBALANCER_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/SwiftBalancerConfig.cmake.in
  ${PROJECT_BINARY_DIR}/SwiftBalancerConfig.cmake
  INSTALL_DESTINATION ${SWIFTBALANCER_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/SwiftBalancerConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/SwiftBalancerConfig.cmake
              ${PROJECT_BINARY_DIR}/SwiftBalancerConfigVersion.cmake
        DESTINATION ${SWIFTBALANCER_CMAKE_DIR})
