# Hostile-input regression tests: load, analysis and planning.
target_link_libraries(robustness_test PRIVATE onnx_reinit_model_io onnx_reinit_analysis
                                              onnx_reinit_plan)
target_include_directories(robustness_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
