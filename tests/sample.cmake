target_link_libraries(sample_test PRIVATE onnx_reinit_sample)
target_include_directories(sample_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(sample_test standard)
set_tests_properties(sample_test PROPERTIES LABELS "unit;threaded")
