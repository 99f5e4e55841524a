# The examples, built the way a user builds them: install the package into a
# temporary prefix, build examples/custom_plugin and examples/query_registry
# out of tree with find_package(OnnxReinit), then load the custom plugin
# with the query program and sample it; build examples/rewrite_model and
# rewrite the example model with the build tree's standard plugin; build
# examples/inspect_model and inspect the example model with ONNX Runtime;
# build examples/reinit_model and run the pipeline on it. Also
# installs everything into a second prefix and checks that no installed file
# names the build or source tree.

set(examples_work ${CMAKE_CURRENT_BINARY_DIR}/examples)
set(examples_prefix ${examples_work}/prefix)

add_test(NAME examples_clean
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${examples_work})
set_tests_properties(examples_clean PROPERTIES FIXTURES_SETUP onnx_reinit_examples_clean)

# Only the `devel` component: headers, SDK, libraries and CMake package.
add_test(NAME examples_install
  COMMAND ${CMAKE_COMMAND} --install ${PROJECT_BINARY_DIR} --prefix ${examples_prefix}
          --component devel)
set_tests_properties(examples_install PROPERTIES
  FIXTURES_REQUIRED onnx_reinit_examples_clean
  FIXTURES_SETUP onnx_reinit_installed)

# The installed package's link interface: no Boost.Filesystem.
add_test(NAME examples_link_interface
  COMMAND ${CMAKE_COMMAND} -DPREFIX=${examples_prefix}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/check_link_interface.cmake)
set_tests_properties(examples_link_interface PROPERTIES
  FIXTURES_REQUIRED onnx_reinit_installed
  LABELS example)

# The examples' own builds must match a sanitized package.
set(examples_options
  -DCMAKE_PREFIX_PATH=${examples_prefix}
  -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}
  -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER})
if(ONNX_REINIT_SANITIZER)
  list(JOIN ONNX_REINIT_SANITIZER_FLAGS " " sanitizer_flags)
  list(APPEND examples_options "-DCMAKE_CXX_FLAGS=${sanitizer_flags} -fno-omit-frame-pointer")
endif()

add_test(NAME examples_custom_plugin
  COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test
          ${PROJECT_SOURCE_DIR}/examples/custom_plugin ${examples_work}/custom_plugin
          --build-generator ${CMAKE_GENERATOR}
          --build-makeprogram ${CMAKE_MAKE_PROGRAM}
          --build-project onnx_reinit_custom_plugin
          --build-options ${examples_options})
set_tests_properties(examples_custom_plugin PROPERTIES
  FIXTURES_REQUIRED onnx_reinit_installed
  FIXTURES_SETUP onnx_reinit_custom_plugin
  LABELS example)

# --strict: any load error fails the test; --no-default: only the example
# plugin is loaded, so the sample really comes from it.
add_test(NAME examples_query_registry
  COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test
          ${PROJECT_SOURCE_DIR}/examples/query_registry ${examples_work}/query_registry
          --build-generator ${CMAKE_GENERATOR}
          --build-makeprogram ${CMAKE_MAKE_PROGRAM}
          --build-project onnx_reinit_query_registry
          --build-options ${examples_options}
          --test-command ${examples_work}/query_registry/query_registry
            --plugin ${examples_work}/custom_plugin/scaled_init.so
            --no-default --strict
            --sample scaled_normal --param depth=4)
set_tests_properties(examples_query_registry PROPERTIES
  FIXTURES_REQUIRED "onnx_reinit_installed;onnx_reinit_custom_plugin"
  LABELS example)

# The devel component has no plugins: the standard one comes from the build
# tree (--plugin-dir), and the test does not run until it is built. The
# program must exit 0 and its plan table name the strategies the policy chose
# and the file written (expect_output checks both; PASS_REGULAR_EXPRESSION
# would ignore the exit status).
add_test(NAME examples_rewrite_model
  COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test
          ${PROJECT_SOURCE_DIR}/examples/rewrite_model ${examples_work}/rewrite_model
          --build-generator ${CMAKE_GENERATOR}
          --build-makeprogram ${CMAKE_MAKE_PROGRAM}
          --build-project onnx_reinit_rewrite_model
          --build-options ${examples_options}
          --test-command ${CMAKE_COMMAND}
            "-DEXPECT=conv1.weight [^\n]* kaiming_normal.*fc2.weight [^\n]* xavier_uniform.*wrote [^\n]*tiny_net.reinit.onnx [(]seed 1[)]"
            -P ${CMAKE_CURRENT_SOURCE_DIR}/support/expect_output.cmake --
            ${examples_work}/rewrite_model/rewrite_model
            ${PROJECT_SOURCE_DIR}/examples/models/tiny_net.onnx
            ${examples_work}/rewrite_model/tiny_net.reinit.onnx
            --seed 1 --plugin-dir ${ONNX_REINIT_BUILD_PLUGIN_DIR})
set_tests_properties(examples_rewrite_model PROPERTIES
  FIXTURES_REQUIRED onnx_reinit_installed
  REQUIRED_FILES $<TARGET_FILE:standard>
  LABELS example)

# The runtime library from the package: the shipped example model's
# BatchNorm has negative running variances, so its activations turn NaN at
# the depthwise Conv, which the inspection flags and names as the worst
# layer. LSAN_OPTIONS as for runtime_test (runtime.cmake).
if(ONNX_REINIT_RUNTIME)
  add_test(NAME examples_inspect_model
    COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test
            ${PROJECT_SOURCE_DIR}/examples/inspect_model ${examples_work}/inspect_model
            --build-generator ${CMAKE_GENERATOR}
            --build-makeprogram ${CMAKE_MAKE_PROGRAM}
            --build-project onnx_reinit_inspect_model
            --build-options ${examples_options}
            --test-command ${CMAKE_COMMAND}
              "-DEXPECT=ONNX Runtime 1[.]29[.]0, batch 1.*conv1.weight +Conv .*dw.weight [^\n]*nonfinite.*worst layer dw.weight"
              -P ${CMAKE_CURRENT_SOURCE_DIR}/support/expect_output.cmake --
              ${examples_work}/inspect_model/inspect_model
              ${PROJECT_SOURCE_DIR}/examples/models/tiny_net.onnx)
  set_tests_properties(examples_inspect_model PROPERTIES
    FIXTURES_REQUIRED onnx_reinit_installed
    ENVIRONMENT "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}"
    LABELS example)

  # The pipeline from the package: the example model with every tensor
  # transferred from itself; the plan, the transfer summary, the inspect
  # document (the same NaN at the depthwise Conv) and the result.
  add_test(NAME examples_reinit_model
    COMMAND ${CMAKE_CTEST_COMMAND} --build-and-test
            ${PROJECT_SOURCE_DIR}/examples/reinit_model ${examples_work}/reinit_model
            --build-generator ${CMAKE_GENERATOR}
            --build-makeprogram ${CMAKE_MAKE_PROGRAM}
            --build-project onnx_reinit_reinit_model
            --build-options ${examples_options}
            --test-command ${CMAKE_COMMAND}
              "-DEXPECT=plan: [^\n]*tiny_net[.]onnx: [0-9]+ tensors: 0 rewrite, [1-9][0-9]* transfer.*transfer: from [^\n]*tiny_net[.]onnx: [1-9][0-9]* transferred, 0 mismatched.*\"original\": {.*\"worst_layer\": \"dw[.]weight\".*\"rewritten\": {.*result: [^\n]*tiny_net[.]out[.]onnx: rewrote 0 of [0-9]+ tensors, transferred [1-9]"
              -P ${CMAKE_CURRENT_SOURCE_DIR}/support/expect_output.cmake --
              ${examples_work}/reinit_model/reinit_model
              ${PROJECT_SOURCE_DIR}/examples/models/tiny_net.onnx
              ${PROJECT_SOURCE_DIR}/examples/models/tiny_net.onnx
              ${examples_work}/reinit_model/tiny_net.out.onnx
              --seed 1 --plugin-dir ${ONNX_REINIT_BUILD_PLUGIN_DIR})
  set_tests_properties(examples_reinit_model PROPERTIES
    FIXTURES_REQUIRED onnx_reinit_installed
    REQUIRED_FILES $<TARGET_FILE:standard>
    ENVIRONMENT "LSAN_OPTIONS=${ONNX_REINIT_LSAN_OPTIONS}"
    LABELS example)
endif()

# Every component, as a packager installs it, in a prefix of its own; the
# installed command must find the installed standard plugin on its own.
add_test(NAME install_has_no_build_paths
  COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${PROJECT_BINARY_DIR} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -DPREFIX=${examples_work}/full_prefix -DBINDIR=${CMAKE_INSTALL_BINDIR}
          -DSTRIP=${CMAKE_STRIP}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/scripts/check_install_paths.cmake)
# Sanitizer instrumentation records source paths in the code itself (not
# in debug info), and nobody installs a sanitizer build: no_sanitize.
set_tests_properties(install_has_no_build_paths PROPERTIES
  FIXTURES_REQUIRED onnx_reinit_examples_clean
  REQUIRED_FILES "$<TARGET_FILE:onnx-reinit>;$<TARGET_FILE:standard>"
  LABELS "example;no_sanitize")
