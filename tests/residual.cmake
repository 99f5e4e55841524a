# residual_test and presets_test read real PyTorch exports (torchvision
# ResNet-18/50, MobileNetV2, a small ViT, a small GPT) made at test time by
# tools/scripts/export_reference_models.py into the build tree: ResNet-50 at
# its real widths is 100 MB per form, too big to check in. The fixture test
# exports once (about 20 s) and keeps files newer than the script.
find_program(ONNX_REINIT_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
set(ONNX_REINIT_REFERENCE_MODELS ${CMAKE_CURRENT_BINARY_DIR}/reference_models)
add_test(NAME export_reference_models
         COMMAND ${ONNX_REINIT_SYSTEM_PYTHON}
                 ${PROJECT_SOURCE_DIR}/tools/scripts/export_reference_models.py
                 ${ONNX_REINIT_REFERENCE_MODELS})
set_tests_properties(export_reference_models PROPERTIES
  FIXTURES_SETUP onnx_reinit_reference_models LABELS "unit;slow")

target_link_libraries(residual_test PRIVATE onnx_reinit_plan)
target_compile_definitions(residual_test PRIVATE
  ONNX_REINIT_REFERENCE_MODELS="${ONNX_REINIT_REFERENCE_MODELS}")
set_tests_properties(residual_test PROPERTIES FIXTURES_REQUIRED onnx_reinit_reference_models)
