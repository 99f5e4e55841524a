# The libonnx-testdata corpus test drives the whole library (load, analyse,
# plan, rewrite with the standard plugin, save, reload) over real models.
target_link_libraries(testdata_corpus_test PRIVATE onnx_reinit_sample)
target_include_directories(testdata_corpus_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(testdata_corpus_test standard)
set_tests_properties(testdata_corpus_test PROPERTIES LABELS "corpus")
