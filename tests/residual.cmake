# residual_test and presets_test read real PyTorch exports (torchvision
# ResNet-18/50, MobileNetV2, a small ViT, a small GPT) made at test time by
# tools/scripts/export_reference_models.py into the build tree: ResNet-50 at
# its real widths is 100 MB per form, too big to check in. The fixture test
# exports once (about 20 s) and keeps files newer than the script.
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

# presets_test rewrites with the standard plugin and measures ResNet-18 with
# ONNX Runtime's inspection when built with it.
target_link_libraries(presets_test PRIVATE onnx_reinit_sample onnx_reinit_runtime)
target_compile_definitions(presets_test PRIVATE
  ONNX_REINIT_REFERENCE_MODELS="${ONNX_REINIT_REFERENCE_MODELS}")
add_dependencies(presets_test standard)
if(NOT ONNX_REINIT_RUNTIME)
  target_compile_definitions(presets_test PRIVATE ONNX_REINIT_NO_RUNTIME=1)
endif()
set_tests_properties(presets_test PROPERTIES FIXTURES_REQUIRED onnx_reinit_reference_models
  ENVIRONMENT "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}")

# presets_cli_test runs the built command on the same exports.
onnx_reinit_add_cli_test(presets_cli_test ${CMAKE_CURRENT_SOURCE_DIR}/cli/presets_cli_test.cpp)
target_compile_definitions(presets_cli_test PRIVATE
  ONNX_REINIT_REFERENCE_MODELS="${ONNX_REINIT_REFERENCE_MODELS}")
add_test(NAME presets_cli_test COMMAND presets_cli_test)
set_tests_properties(presets_cli_test PROPERTIES LABELS cli
  FIXTURES_REQUIRED onnx_reinit_reference_models)

# transfer_test builds its models; it rewrites with the standard plugin.
target_link_libraries(transfer_test PRIVATE onnx_reinit_sample)
add_dependencies(transfer_test standard)
# The copy runs through the writer's producers and the rewrite's threads.
set_tests_properties(transfer_test PROPERTIES LABELS "unit;threaded")
