# patterns_test analyses and plans models, so it links the planner (which
# brings the analysis).
target_link_libraries(patterns_test PRIVATE onnx_reinit_plan)
# The PReLU slope tests ask the standard plugin's strategies, and a fixture
# strategy of another name, what they write.
add_dependencies(patterns_test standard fixture_moments)
target_compile_definitions(patterns_test PRIVATE
  ONNX_REINIT_FIXTURE_SDK_PLUGIN_DIR="${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins_sdk")
