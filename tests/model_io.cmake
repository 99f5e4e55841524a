# model_io_test links the model I/O library and the shared ONNX builder; it
# limits TBB's threads to check the writer's figures for any thread count.
target_link_libraries(model_io_test PRIVATE onnx_reinit_model_io TBB::tbb)
set_tests_properties(model_io_test PROPERTIES LABELS "unit;threaded")

# A save that kills itself at a chosen step of publishing, for the
# crash-consistency test; it sets the internal step hook (io_internal.h).
add_executable(publish_kill_helper ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/publish_kill_helper.cpp)
target_link_libraries(publish_kill_helper PRIVATE onnx_reinit_model_io)
target_include_directories(publish_kill_helper PRIVATE ${PROJECT_SOURCE_DIR}/core/onnx/io)
onnx_reinit_warnings(publish_kill_helper)
add_dependencies(model_io_test publish_kill_helper)
target_compile_definitions(model_io_test PRIVATE
  PUBLISH_KILL_HELPER="$<TARGET_FILE:publish_kill_helper>")
