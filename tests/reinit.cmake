# reinit_test: the library pipeline (reinit.h) against the built command,
# run as a child process: the same arguments give the same bytes and the
# same report. LSAN_OPTIONS as for runtime_test (runtime.cmake).
if(NOT TARGET onnx-reinit)
  return()
endif()
onnx_reinit_add_cli_test(reinit_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/reinit_test.cpp)
target_link_libraries(reinit_test PRIVATE onnx_reinit_pipeline)
add_test(NAME reinit_test COMMAND reinit_test)
set_tests_properties(reinit_test PROPERTIES LABELS "unit;cli" ENVIRONMENT
  "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}")
