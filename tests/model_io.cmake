# model_io_test links the model I/O library and the shared ONNX builder.
target_link_libraries(model_io_test PRIVATE onnx_reinit_model_io)
