# End-to-end tests of --inspect and --calibrate lsuv: the built command as a
# child process. LSAN_OPTIONS as for runtime_test (see runtime.cmake).
if(NOT TARGET onnx-reinit)
  return()
endif()
add_executable(cli_inspect_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/inspect_test.cpp)
target_link_libraries(cli_inspect_test PRIVATE onnx_reinit_test_main onnx_reinit_test_deps
                                               onnx_reinit_model_io nlohmann_json::nlohmann_json)
target_include_directories(cli_inspect_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(cli_inspect_test PRIVATE ONNX_REINIT_CLI="$<TARGET_FILE:onnx-reinit>")
if(NOT ONNX_REINIT_RUNTIME)
  target_compile_definitions(cli_inspect_test PRIVATE ONNX_REINIT_NO_RUNTIME=1)
endif()
add_dependencies(cli_inspect_test onnx-reinit standard)
onnx_reinit_warnings(cli_inspect_test)
add_test(NAME cli_inspect_test COMMAND cli_inspect_test)
set_tests_properties(cli_inspect_test PROPERTIES LABELS cli ENVIRONMENT
  "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}")
