target_link_libraries(rewrite_test PRIVATE onnx_reinit_sample)
target_include_directories(rewrite_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(rewrite_test standard)
set_tests_properties(rewrite_test PROPERTIES LABELS "unit;threaded")
