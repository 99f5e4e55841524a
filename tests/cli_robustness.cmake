# Robustness tests of the command: broken plugins, size limits, hostile
# files and SIGKILL mid-write. The kill loop writes ~200 MB per iteration:
# it is labelled slow and kept out of the sanitizer runs.

# A fixture plugin in a directory of its own: registry_test counts the
# strategies of fixture_plugins/.
onnx_reinit_add_plugin(fixture_broken_strategies
  ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/plugins/broken_strategies.cpp
  OUTPUT_NAME broken_strategies
  OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins_broken)
onnx_reinit_warnings(fixture_broken_strategies)

add_executable(cli_robustness_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/robustness_test.cpp)
target_link_libraries(cli_robustness_test PRIVATE onnx_reinit_test_main onnx_reinit_test_deps
                                                  onnx_reinit_model_io)
target_include_directories(cli_robustness_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(cli_robustness_test PRIVATE
  ONNX_REINIT_CLI="$<TARGET_FILE:onnx-reinit>"
  ONNX_REINIT_FIXTURE_BROKEN_PLUGIN="${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins_broken/broken_strategies.so")
add_dependencies(cli_robustness_test onnx-reinit standard fixture_broken_strategies)
onnx_reinit_warnings(cli_robustness_test)
add_test(NAME cli_robustness_test COMMAND cli_robustness_test "~[slow]")
set_tests_properties(cli_robustness_test PROPERTIES LABELS "cli;threaded")
add_test(NAME cli_kill_test COMMAND cli_robustness_test "[slow]")
set_tests_properties(cli_kill_test PROPERTIES LABELS "cli;slow;no_sanitize" TIMEOUT 900)
