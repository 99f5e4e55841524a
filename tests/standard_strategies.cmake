# The standard strategies are tested through their descriptors, linked in
# directly (the plugin loading itself is the registry's test).
find_package(hwy REQUIRED)
target_link_libraries(standard_strategies_test PRIVATE onnx_reinit_standard_strategies onnx_reinit_rng
  TBB::tbb hwy::hwy)
# The test also opens the built module to check its one exported entry.
add_dependencies(standard_strategies_test standard)
target_link_libraries(standard_strategies_test PRIVATE ${CMAKE_DL_LIBS})
# Orthogonal fills run on TBB threads (gate blocks and column chunks).
set_tests_properties(standard_strategies_test PROPERTIES LABELS "unit;threaded")
