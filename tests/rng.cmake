# Boost's erfc_inv in long double is the reference for the double quantile.
target_link_libraries(rng_test PRIVATE onnx_reinit_rng Boost::headers)
# The test reaches the internal kernels (scalar reference, per-target vector
# code) and computes its own expected values without FMA contraction.
target_include_directories(rng_test PRIVATE ${PROJECT_SOURCE_DIR}/core/rng)
target_compile_options(rng_test PRIVATE -ffp-contract=off)
set_tests_properties(rng_test PROPERTIES LABELS "unit;threaded")
