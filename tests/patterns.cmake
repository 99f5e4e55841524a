# patterns_test analyses and plans models, so it links the planner (which
# brings the analysis).
target_link_libraries(patterns_test PRIVATE onnx_reinit_plan)
