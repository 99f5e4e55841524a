# What the library shows: formatters for every stage's value, the strategy
# listings, and reports staged beside their destination.
target_link_libraries(report_test PRIVATE onnx_reinit_sample)
target_include_directories(report_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(report_test standard)
