# analysis_test links the analysis library and the model I/O library
# (collect_model_tensors, for the order check).
if(TARGET analysis_test)
  target_link_libraries(analysis_test PRIVATE onnx_reinit_analysis)
  if(TARGET onnx_reinit_model_io)
    target_link_libraries(analysis_test PRIVATE onnx_reinit_model_io)
  endif()
endif()
