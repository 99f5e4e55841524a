# Compiler settings shared by every target of the project's own code.

# Warnings as errors on our code only; third-party headers come in as SYSTEM
# include directories through their imported targets.
function(onnx_reinit_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  # GCC's -Wmaybe-uninitialized misfires on sanitizer-instrumented code
  # (e.g. inside libstdc++'s <regex>); the normal build keeps it as an error.
  if(ONNX_REINIT_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()

if(ONNX_REINIT_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# A plugin exports exactly one symbol; everything else stays hidden
# (DESIGN.md section 3).
function(onnx_reinit_add_plugin target)
  add_library(${target} MODULE ${ARGN})
  target_link_libraries(${target} PRIVATE onnx_reinit_sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${ONNX_REINIT_BUILD_PLUGIN_DIR})
  onnx_reinit_warnings(${target})
endfunction()
