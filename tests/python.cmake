# The Python module's tests (tests/python/, pytest from Debian's
# python3-pytest) and the Python examples (examples/python/), with the
# build tree's package on PYTHONPATH, compared against the built command.
# Only with ONNX_REINIT_PYTHON. Labels: python; the PyTorch bridge's are
# slow. All are no_sanitize: a sanitizer-instrumented extension cannot be
# loaded into the uninstrumented python3 (ASan must come first in the
# process), so the sanitizer runs leave them out.
if(NOT ONNX_REINIT_PYTHON)
  return()
endif()

# pytest is required; onnx, numpy (and torch, for the bridge) are what the
# tests import.
execute_process(COMMAND ${ONNX_REINIT_PYTHON_EXECUTABLE} -c "import pytest, onnx, numpy"
                RESULT_VARIABLE python_test_modules OUTPUT_QUIET ERROR_QUIET)
if(NOT python_test_modules EQUAL 0)
  message(FATAL_ERROR "the Python tests need pytest, onnx and numpy for "
                      "${ONNX_REINIT_PYTHON_EXECUTABLE}: install python3-pytest python3-onnx "
                      "python3-numpy (tools/setup.sh does), or configure with "
                      "-DONNX_REINIT_PYTHON=OFF or -DONNX_REINIT_BUILD_TESTS=OFF")
endif()
execute_process(COMMAND ${ONNX_REINIT_PYTHON_EXECUTABLE} -c "import torch"
                RESULT_VARIABLE python_has_torch OUTPUT_QUIET ERROR_QUIET)

set(python_test_env
  "PYTHONPATH=${PROJECT_BINARY_DIR}/python"
  "PYTHONDONTWRITEBYTECODE=1"
  "ONNX_REINIT_CLI=$<TARGET_FILE:onnx-reinit>")
# python_install installs the build into a temporary prefix.
set(python_install_env
  "ONNX_REINIT_BUILD_DIR=${PROJECT_BINARY_DIR}"
  "ONNX_REINIT_INSTALL_PYTHONDIR=${ONNX_REINIT_INSTALL_PYTHONDIR}")
set(python_required "$<TARGET_FILE:onnx-reinit>;$<TARGET_FILE:onnx_reinit_python>")

foreach(part reinit errors registry runtime torch install)
  add_test(NAME python_${part}
    COMMAND ${ONNX_REINIT_PYTHON_EXECUTABLE} -m pytest -q -p no:cacheprovider
            ${CMAKE_CURRENT_SOURCE_DIR}/python/test_${part}.py)
  set(labels "python;no_sanitize")
  if(part STREQUAL "torch")
    set(labels "python;slow;no_sanitize")
  endif()
  set_tests_properties(python_${part} PROPERTIES
    ENVIRONMENT "${python_test_env};${python_install_env}"
    REQUIRED_FILES "${python_required}"
    LABELS "${labels}")
endforeach()

# The examples: exit status 0 and their output (support/expect_output.cmake).
set(python_examples ${PROJECT_SOURCE_DIR}/examples/python)
set(python_example_dir ${CMAKE_CURRENT_BINARY_DIR}/python_examples)
file(MAKE_DIRECTORY ${python_example_dir})
function(onnx_reinit_python_example name expect)
  add_test(NAME example_python_${name}
    COMMAND ${CMAKE_COMMAND} "-DEXPECT=${expect}"
            -P ${CMAKE_CURRENT_SOURCE_DIR}/support/expect_output.cmake --
            ${ONNX_REINIT_PYTHON_EXECUTABLE} ${python_examples}/${name}.py ${ARGN})
  set_tests_properties(example_python_${name} PROPERTIES
    ENVIRONMENT "${python_test_env}"
    REQUIRED_FILES "${python_required}"
    LABELS "python;example;no_sanitize")
endfunction()
onnx_reinit_python_example(rewrite_model
  "conv1.weight +kaiming_normal.*wrote [^\n]*tiny_net.py.onnx [(]seed 1[)]"
  ${PROJECT_SOURCE_DIR}/examples/models/tiny_net.onnx ${python_example_dir}/tiny_net.py.onnx 1)
onnx_reinit_python_example(print_plan
  "conv1.weight +[[]8,3,3,3[]] +Conv .*kaiming_normal.*weights planned: conv1.weight kaiming_normal"
  ${PROJECT_SOURCE_DIR}/examples/models/tiny_net.onnx)
onnx_reinit_python_example(query_strategies
  "kaiming_normal[(]a=0.*orthogonal.*sampled normal on fc.weight [[]64, 128[]], seed 1: mean [-+]0[.]00[0-9]* std 0[.]0(49|50|51)"
  normal std=0.05)
# The bridge's example needs python3-torch (its pytest file skips itself).
if(python_has_torch EQUAL 0)
  onnx_reinit_python_example(init_torch_module
    "0[.]weight +weight +kaiming_normal.*unmapped parameters: none.*one training step: loss [0-9]")
  set_tests_properties(example_python_init_torch_module PROPERTIES
    LABELS "python;example;slow;no_sanitize")
endif()
