# onnx_reinit_add_plugin(): a strategy plugin as a MODULE library exporting
# exactly one symbol, everything else hidden (docs/DESIGN.md section 3). The one
# definition, used by the project's own plugins and test fixtures and
# installed with the package for out-of-tree plugins.
#
#   onnx_reinit_add_plugin(<target> [OUTPUT_NAME <name>]
#                          [OUTPUT_DIRECTORY <dir>] <sources>...)
#
# The library is `<name>.so` (no "lib" prefix), `<name>` defaulting to
# <target>, and links OnnxReinit::sdk only.
include_guard(GLOBAL)

function(onnx_reinit_add_plugin target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "OUTPUT_NAME;OUTPUT_DIRECTORY" "")
  if(NOT arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "onnx_reinit_add_plugin(${target}): no source files")
  endif()
  add_library(${target} MODULE ${arg_UNPARSED_ARGUMENTS})
  target_link_libraries(${target} PRIVATE OnnxReinit::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(arg_OUTPUT_NAME)
    set_target_properties(${target} PROPERTIES OUTPUT_NAME ${arg_OUTPUT_NAME})
  endif()
  if(arg_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${arg_OUTPUT_DIRECTORY})
  endif()
endfunction()
