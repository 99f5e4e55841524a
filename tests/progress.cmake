# The command's progress bar: line formatting, and drawing only on a
# terminal (a pseudo-terminal in the test) from a thread of its own.
target_link_libraries(progress_test PRIVATE onnx_reinit_cli_progress)
set_tests_properties(progress_test PROPERTIES LABELS "unit;threaded")
