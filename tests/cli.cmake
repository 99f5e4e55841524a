# End-to-end tests of the onnx-reinit command: cli_test runs the built
# executable as a child process on models it builds with the ONNX protobuf API,
# and reads the results back with the model I/O library.
add_executable(cli_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/cli_test.cpp)
target_link_libraries(cli_test PRIVATE onnx_reinit_test_main onnx_reinit_test_deps
                                       onnx_reinit_model_io nlohmann_json::nlohmann_json)
target_include_directories(cli_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(cli_test PRIVATE ONNX_REINIT_CLI="$<TARGET_FILE:onnx-reinit>")
add_dependencies(cli_test onnx-reinit standard)
# Two of registry.cmake's fixture plugins, for --plugin and
# ONNX_REINIT_PLUGIN_PATH (the targets exist once that file is included).
add_dependencies(cli_test fixture_good fixture_env_plugin)
target_compile_definitions(cli_test PRIVATE
  ONNX_REINIT_FIXTURE_GOOD_PLUGIN="${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins/good.so"
  ONNX_REINIT_FIXTURE_ENV_PLUGIN_DIR="${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins_env")
onnx_reinit_warnings(cli_test)
add_test(NAME cli_test COMMAND cli_test)
set_tests_properties(cli_test PROPERTIES LABELS "cli;threaded")
