# Instrumentation for the fuzz build (-DONNX_REINIT_FUZZ=ON, clang only):
# every library of ours gets libFuzzer's coverage hooks plus ASan and UBSan,
# so a finding anywhere in reading, analysis or planning is reported.
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "ONNX_REINIT_FUZZ needs clang (CXX=clang++); see tools/fuzz.sh")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                    -fno-sanitize-recover=undefined)
add_link_options(-fsanitize=address,undefined)
