# model_skeleton_test loads models with and without their payloads.
target_link_libraries(model_skeleton_test PRIVATE onnx_reinit_model_io)
