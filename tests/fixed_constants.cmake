# fixed_constants_test reaches the detector's internal header, reads real
# models through model I/O, and plans and rewrites a model end to end.
target_link_libraries(fixed_constants_test PRIVATE onnx_reinit_analysis onnx_reinit_sample)
target_include_directories(fixed_constants_test PRIVATE ${PROJECT_SOURCE_DIR}/core/onnx/analysis
                                                        ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(fixed_constants_test standard)
