target_link_libraries(streaming_test PRIVATE onnx_reinit_sample)
target_include_directories(streaming_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(streaming_test standard)
set_tests_properties(streaming_test PROPERTIES LABELS "unit;threaded")
