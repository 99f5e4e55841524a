# End-to-end tests of --inspect and --calibrate lsuv: the built command as a
# child process. LSAN_OPTIONS as for runtime_test (see runtime.cmake).
if(NOT TARGET onnx-reinit)
  return()
endif()
onnx_reinit_add_cli_test(cli_inspect_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/inspect_test.cpp)
add_test(NAME cli_inspect_test COMMAND cli_inspect_test)
set_tests_properties(cli_inspect_test PROPERTIES LABELS cli ENVIRONMENT
  "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}")
