# analysis_test links the analysis library (which brings model I/O, for the
# collect_model_tensors order check) and the planner (gain=auto as written
# into the plan from an analysed model).
target_link_libraries(analysis_test PRIVATE onnx_reinit_analysis onnx_reinit_plan)
