# signal_policy_test: the signal policy through the library pipeline, with
# the standard plugin; LSAN_OPTIONS as for runtime_test (runtime.cmake).
target_link_libraries(signal_policy_test PRIVATE onnx_reinit_pipeline)
target_include_directories(signal_policy_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(signal_policy_test standard)
set_tests_properties(signal_policy_test PROPERTIES ENVIRONMENT
  "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}")
