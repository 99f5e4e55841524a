# The installable package: public headers, the header-only SDK and the
# static registry, RNG and ONNX libraries, exported as OnnxReinit::sdk,
# OnnxReinit::registry, OnnxReinit::rng, OnnxReinit::model_io,
# OnnxReinit::analysis, OnnxReinit::plan, OnnxReinit::sample,
# OnnxReinit::onnx (all four) and
# OnnxReinit::runtime (inspection and LSUV, with the ONNX Runtime library
# installed beside it when the build has the runtime) so
# that out-of-tree plugins and programs use find_package(OnnxReinit), with
# onnx_reinit_add_plugin() (cmake/OnnxReinitPlugin.cmake, the same function
# the project's own plugins use). These rules are in the `devel`
# component: `cmake --install <build> --component devel` installs the
# package alone, without tools or plugins.
include(CMakePackageConfigHelpers)

set(ONNX_REINIT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/OnnxReinit)

# The public headers only: onnx_reinit/internal/ holds what the host's
# sources share (text.h) and is never installed; the source folders'
# headers (io_internal.h, parallel_for.h, ...) are not under include/.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/onnx_reinit
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT devel
  FILES_MATCHING PATTERN "*.h"
  PATTERN "internal" EXCLUDE)
install(FILES ${PROJECT_BINARY_DIR}/generated/include/onnx_reinit/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/onnx_reinit
  COMPONENT devel)

set_target_properties(onnx_reinit_sdk PROPERTIES EXPORT_NAME sdk)
set(onnx_reinit_exported onnx_reinit_sdk)
foreach(part registry rng model_io analysis signal plan sample onnx runtime pipeline)
  set_target_properties(onnx_reinit_${part} PROPERTIES EXPORT_NAME ${part})
  list(APPEND onnx_reinit_exported onnx_reinit_${part})
endforeach()

install(TARGETS ${onnx_reinit_exported}
  EXPORT OnnxReinitTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT devel)
install(EXPORT OnnxReinitTargets
  NAMESPACE OnnxReinit::
  DESTINATION ${ONNX_REINIT_INSTALL_CMAKEDIR}
  COMPONENT devel)

# The runtime library links ONNX Runtime; the package ships the exact
# library it was built with (its symbols are versioned) in lib/.
set(ONNX_REINIT_ORT_LIBRARY_NAME "")
if(ONNX_REINIT_RUNTIME)
  get_filename_component(ONNX_REINIT_ORT_LIBRARY_NAME ${onnxruntime_LIBRARY} NAME)
  install(FILES ${PROJECT_BINARY_DIR}/lib/${ONNX_REINIT_ORT_LIBRARY_NAME}
    DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT devel)
endif()
set(ONNX_REINIT_ORT_LIBRARY_PATH ${CMAKE_INSTALL_LIBDIR}/${ONNX_REINIT_ORT_LIBRARY_NAME})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/OnnxReinitConfig.cmake.in
  ${PROJECT_BINARY_DIR}/OnnxReinitConfig.cmake
  INSTALL_DESTINATION ${ONNX_REINIT_INSTALL_CMAKEDIR}
  PATH_VARS ONNX_REINIT_INSTALL_PLUGIN_DIR CMAKE_INSTALL_INCLUDEDIR ONNX_REINIT_ORT_LIBRARY_PATH)
# 0.x: minor versions may break the ABI; 1.x on, the major version.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/OnnxReinitConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_SOURCE_DIR}/cmake/OnnxReinitPlugin.cmake
  ${PROJECT_BINARY_DIR}/OnnxReinitConfig.cmake
  ${PROJECT_BINARY_DIR}/OnnxReinitConfigVersion.cmake
  DESTINATION ${ONNX_REINIT_INSTALL_CMAKEDIR}
  COMPONENT devel)
