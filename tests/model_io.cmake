# model_io_test links the model I/O library and the shared ONNX builder; it
# limits TBB's threads to check the writer's figures for any thread count.
target_link_libraries(model_io_test PRIVATE onnx_reinit_model_io TBB::tbb)
set_tests_properties(model_io_test PROPERTIES LABELS "unit;threaded")
