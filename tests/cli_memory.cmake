# Peak RSS of the command on an external-data model. A sanitizer's shadow
# memory would distort the figure: kept out of the sanitizer runs.
add_executable(cli_memory_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/memory_test.cpp)
target_link_libraries(cli_memory_test PRIVATE onnx_reinit_test_main onnx_reinit_test_deps
                                              onnx_reinit_model_io)
target_include_directories(cli_memory_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(cli_memory_test PRIVATE ONNX_REINIT_CLI="$<TARGET_FILE:onnx-reinit>")
add_dependencies(cli_memory_test onnx-reinit standard)
onnx_reinit_warnings(cli_memory_test)
add_test(NAME cli_memory_test COMMAND cli_memory_test)
set_tests_properties(cli_memory_test PROPERTIES LABELS "cli;slow;no_sanitize" TIMEOUT 600)
