# pattern_models_test plans the models of issue 17's graph patterns (a
# log-mel front end with an epsilon, SAM's coordinate-grid positional
# encoder, an fp16 side-output net with Resize, torchaudio's ConvTasNet),
# exported at test time by tools/scripts/export_pattern_models.py into the
# build tree (about 10 s; files newer than the script are kept).
add_test(NAME export_pattern_models
         COMMAND ${ONNX_REINIT_SYSTEM_PYTHON}
                 ${PROJECT_SOURCE_DIR}/tools/scripts/export_pattern_models.py
                 ${ONNX_REINIT_PATTERN_MODELS})
set_tests_properties(export_pattern_models PROPERTIES
  FIXTURES_SETUP onnx_reinit_pattern_models LABELS "unit;slow")

target_link_libraries(pattern_models_test PRIVATE onnx_reinit_plan)
target_compile_definitions(pattern_models_test PRIVATE
  ONNX_REINIT_PATTERN_MODELS="${ONNX_REINIT_PATTERN_MODELS}")
set_tests_properties(pattern_models_test PROPERTIES FIXTURES_REQUIRED onnx_reinit_pattern_models)
