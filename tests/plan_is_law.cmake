# The "plan is law" differential test (tests/cli/plan_is_law_test.cpp): the
# command over every model of the test corpora under the default policy,
# --only, --skip, `keep` rules, --from and --calibrate lsuv, output compared
# with input tensor by tensor against the report. One ctest entry per
# corpus; all but the example model take minutes, so they run in the normal
# build only (slow, no_sanitize).
onnx_reinit_add_cli_test(plan_is_law_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/plan_is_law_test.cpp)
target_link_libraries(plan_is_law_test PRIVATE onnx_reinit_analysis)
target_compile_definitions(plan_is_law_test PRIVATE
  ONNX_REINIT_REFERENCE_MODELS="${ONNX_REINIT_REFERENCE_MODELS}"
  ONNX_REINIT_PATTERN_MODELS="${ONNX_REINIT_PATTERN_MODELS}"
  ONNX_REINIT_QDQ_MODELS="${ONNX_REINIT_QDQ_MODELS}")
set(plan_is_law_env "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}")
add_test(NAME plan_is_law_examples COMMAND plan_is_law_test "[examples]")
set_tests_properties(plan_is_law_examples PROPERTIES LABELS cli ENVIRONMENT "${plan_is_law_env}")
add_test(NAME plan_is_law_exports COMMAND plan_is_law_test "[exports]")
set_tests_properties(plan_is_law_exports PROPERTIES LABELS "cli;slow;no_sanitize" TIMEOUT 1800)
add_test(NAME plan_is_law_corpus COMMAND plan_is_law_test "[corpus]")
set_tests_properties(plan_is_law_corpus PROPERTIES LABELS "cli;corpus;slow;no_sanitize"
  TIMEOUT 1800)
add_test(NAME plan_is_law_reference COMMAND plan_is_law_test "[reference]")
set_tests_properties(plan_is_law_reference PROPERTIES LABELS "cli;slow;no_sanitize" TIMEOUT 1800
  FIXTURES_REQUIRED onnx_reinit_reference_models)
add_test(NAME plan_is_law_testdata COMMAND plan_is_law_test "[testdata]")
set_tests_properties(plan_is_law_testdata PROPERTIES LABELS "cli;corpus;slow;no_sanitize"
  TIMEOUT 1800)
add_test(NAME plan_is_law_patterns COMMAND plan_is_law_test "[patterns]")
set_tests_properties(plan_is_law_patterns PROPERTIES LABELS cli ENVIRONMENT "${plan_is_law_env}"
  FIXTURES_REQUIRED onnx_reinit_pattern_models)
add_test(NAME plan_is_law_qdq COMMAND plan_is_law_test "[qdq]")
set_tests_properties(plan_is_law_qdq PROPERTIES LABELS cli ENVIRONMENT "${plan_is_law_env}"
  FIXTURES_REQUIRED onnx_reinit_qdq_models)
