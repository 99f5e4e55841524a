# Quantized (QDQ) models: tools/scripts/make_qdq_model.py writes a per-channel
# int8 QDQ model in ONNX Runtime's static-quantization layout (and the float
# export it came from) into the build tree at test time. quantized_test
# analyses and plans it; quantized_cli_test runs the command on it.
add_test(NAME make_qdq_model
         COMMAND ${ONNX_REINIT_SYSTEM_PYTHON} ${PROJECT_SOURCE_DIR}/tools/scripts/make_qdq_model.py
                 ${ONNX_REINIT_QDQ_MODELS})
set_tests_properties(make_qdq_model PROPERTIES FIXTURES_SETUP onnx_reinit_qdq_models LABELS unit)

target_link_libraries(quantized_test PRIVATE onnx_reinit_sample)
target_include_directories(quantized_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(quantized_test PRIVATE ONNX_REINIT_QDQ_MODELS="${ONNX_REINIT_QDQ_MODELS}")
add_dependencies(quantized_test standard)
set_tests_properties(quantized_test PROPERTIES FIXTURES_REQUIRED onnx_reinit_qdq_models)

onnx_reinit_add_cli_test(quantized_cli_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/quantized_cli_test.cpp)
target_compile_definitions(quantized_cli_test PRIVATE
  ONNX_REINIT_QDQ_MODELS="${ONNX_REINIT_QDQ_MODELS}")
add_test(NAME quantized_cli_test COMMAND quantized_cli_test)
set_tests_properties(quantized_cli_test PROPERTIES LABELS "cli;threaded"
  FIXTURES_REQUIRED onnx_reinit_qdq_models
  ENVIRONMENT "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tools/lsan_suppressions.txt:print_suppressions=0")
