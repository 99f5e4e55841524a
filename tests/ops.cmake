# ops_test reads the op table's internal header (core/onnx/analysis/ops.h)
# and plans the models it builds, so it links the planner.
target_link_libraries(ops_test PRIVATE onnx_reinit_analysis onnx_reinit_plan)
target_include_directories(ops_test PRIVATE ${PROJECT_SOURCE_DIR}/core/onnx/analysis
                                            ${CMAKE_CURRENT_SOURCE_DIR})
