# runtime_test runs models with ONNX Runtime (or checks the stubs' message
# in a build without it), and rewrites with the standard plugin for the
# default-policy checks. LeakSanitizer reports a small leak inside
# libonnxruntime itself: suppressed by library name only
# (tools/lsan_suppressions.txt), for this test and the CLI's.
target_link_libraries(runtime_test PRIVATE onnx_reinit_runtime onnx_reinit_sample Eigen3::Eigen)
# core/runtime: the batch's internals (runtime_internal.h) are tested directly.
target_include_directories(runtime_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}
                                                ${PROJECT_SOURCE_DIR}/core/runtime)
add_dependencies(runtime_test standard)
if(NOT ONNX_REINIT_RUNTIME)
  # Without the runtime only the stub is built; the test then checks its message.
  target_compile_definitions(runtime_test PRIVATE ONNX_REINIT_NO_RUNTIME=1)
endif()
set_tests_properties(runtime_test PROPERTIES ENVIRONMENT "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}")
