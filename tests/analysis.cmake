# analysis_test links the analysis library (which brings model I/O, for the
# collect_model_tensors order check).
target_link_libraries(analysis_test PRIVATE onnx_reinit_analysis)
