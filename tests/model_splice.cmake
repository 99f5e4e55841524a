# model_splice_test loads real models and saves them with both writers.
target_link_libraries(model_splice_test PRIVATE onnx_reinit_model_io)
