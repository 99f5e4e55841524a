# The registry test and its purpose-built plugins, good and bad. Fixtures go
# to their own directories, never the default plugin directory.
set(registry_fixture_dir ${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins)
set(registry_fixture_env_dir ${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins_env)

# onnx_reinit_add_plugin() as for any plugin, plus the project's warnings.
function(onnx_reinit_fixture_plugin name source dir)
  onnx_reinit_add_plugin(fixture_${name} ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/plugins/${source}
                         OUTPUT_NAME ${name} OUTPUT_DIRECTORY ${dir})
  onnx_reinit_warnings(fixture_${name})
  add_dependencies(registry_test fixture_${name})
endfunction()

onnx_reinit_fixture_plugin(good good.cpp ${registry_fixture_dir})
onnx_reinit_fixture_plugin(duplicate duplicate.cpp ${registry_fixture_dir})
onnx_reinit_fixture_plugin(throwing_factory throwing_factory.cpp ${registry_fixture_dir})
onnx_reinit_fixture_plugin(no_entry no_entry.cpp ${registry_fixture_dir})
onnx_reinit_fixture_plugin(null_entry null_entry.cpp ${registry_fixture_dir})
onnx_reinit_fixture_plugin(wrong_abi wrong_abi.cpp ${registry_fixture_dir})
onnx_reinit_fixture_plugin(small_descriptor wrong_abi.cpp ${registry_fixture_dir})
target_compile_definitions(fixture_small_descriptor PRIVATE FIXTURE_SMALL_DESCRIPTOR)
# Links only because module libraries may leave symbols undefined; keep it
# that way even if someone adds -z defs globally.
onnx_reinit_fixture_plugin(unresolved unresolved.cpp ${registry_fixture_dir})
target_link_options(fixture_unresolved PRIVATE -Wl,-z,undefs)
foreach(variant RANGE 1 6)
  onnx_reinit_fixture_plugin(bad_descriptor_${variant} bad_descriptor.cpp ${registry_fixture_dir})
  target_compile_definitions(fixture_bad_descriptor_${variant} PRIVATE
    FIXTURE_BAD_VARIANT=${variant})
endforeach()
onnx_reinit_fixture_plugin(env_plugin env_plugin.cpp ${registry_fixture_env_dir})

# The SDK contract's fixtures, in a directory of their own so the counts of
# the directory-scan tests above stay as they are.
set(registry_fixture_sdk_dir ${CMAKE_CURRENT_BINARY_DIR}/fixture_plugins_sdk)
onnx_reinit_fixture_plugin(moments moments.cpp ${registry_fixture_sdk_dir})
foreach(variant RANGE 1 5)
  onnx_reinit_fixture_plugin(strategy_sizes_${variant} strategy_sizes.cpp
                             ${registry_fixture_sdk_dir})
  target_compile_definitions(fixture_strategy_sizes_${variant} PRIVATE
    FIXTURE_SIZE_VARIANT=${variant})
endforeach()

# plugin_abi.h declares the entry point: a definition of another type must
# not compile. Variant 0, the exact type, must compile (so a broken command
# line cannot pass for a refusal); 1-3 must fail with the compiler's
# complaint about that very declaration.
set(entry_signature_command
  ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -Wall -Wextra -Werror
  -I${PROJECT_SOURCE_DIR}/core/include
  ${CMAKE_CURRENT_SOURCE_DIR}/fixtures/plugins/bad_entry_signature.cpp)
add_test(NAME plugin_entry_signature_exact
  COMMAND ${entry_signature_command} -DFIXTURE_ENTRY_VARIANT=0)
function(onnx_reinit_entry_signature_test variant expected)
  add_test(NAME plugin_entry_signature_wrong_${variant}
    COMMAND ${entry_signature_command} -DFIXTURE_ENTRY_VARIANT=${variant})
  set_tests_properties(plugin_entry_signature_wrong_${variant} PROPERTIES
    PASS_REGULAR_EXPRESSION "${expected}")
endfunction()
onnx_reinit_entry_signature_test(1 "different exception specifier")
onnx_reinit_entry_signature_test(2 "conflicting declaration of C function|ambiguating new declaration")
onnx_reinit_entry_signature_test(3 "conflicting declaration of C function")
set_tests_properties(plugin_entry_signature_exact plugin_entry_signature_wrong_1
  plugin_entry_signature_wrong_2 plugin_entry_signature_wrong_3 PROPERTIES
  LABELS "unit;registry")

# Not a library at all, and a file the directory scan must skip.
file(MAKE_DIRECTORY ${registry_fixture_dir})
file(WRITE ${registry_fixture_dir}/not_a_library.so "this is a text file, not a library\n")
file(WRITE ${registry_fixture_dir}/README.txt "ignored: not a .so file\n")

target_link_libraries(registry_test PRIVATE onnx_reinit_registry onnx_reinit_rng)
target_compile_definitions(registry_test PRIVATE
  ONNX_REINIT_FIXTURE_PLUGIN_DIR="${registry_fixture_dir}"
  ONNX_REINIT_FIXTURE_ENV_PLUGIN_DIR="${registry_fixture_env_dir}"
  ONNX_REINIT_FIXTURE_SDK_PLUGIN_DIR="${registry_fixture_sdk_dir}"
  ONNX_REINIT_PLUGIN_DIR_FROM_BINDIR="${ONNX_REINIT_PLUGIN_DIR_FROM_BINDIR}"
  ONNX_REINIT_HAVE_HOST_RNG=1)
set_tests_properties(registry_test PROPERTIES LABELS "unit;registry")
