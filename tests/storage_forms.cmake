# storage_forms_test loads models from disk, analyses and plans them.
target_link_libraries(storage_forms_test PRIVATE onnx_reinit_model_io onnx_reinit_analysis
                                                 onnx_reinit_plan)
