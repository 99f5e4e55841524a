# Compiler settings shared by every target of the project's own code.

# Warnings on our code only; third-party headers come in as SYSTEM include
# directories through their imported targets. Warnings are errors only with
# ONNX_REINIT_WERROR (the project's own scripts and CI): a packager's
# compiler, flags or optimization level may warn where ours does not, and
# that must not stop their build.
function(onnx_reinit_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(ONNX_REINIT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  # GCC's -Wmaybe-uninitialized misfires on sanitizer-instrumented code
  # (e.g. inside libstdc++'s <regex>); the normal build keeps it as an error.
  if(ONNX_REINIT_SANITIZER AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()

# ONNX_REINIT_SANITIZE: OFF; ON or "address" (ASan + UBSan); "thread"
# (TSan). ONNX_REINIT_SANITIZER is the normalized name, empty when off.
string(TOLOWER "${ONNX_REINIT_SANITIZE}" onnx_reinit_sanitize_value)
if(onnx_reinit_sanitize_value MATCHES "^(on|yes|true|1|address)$")
  set(ONNX_REINIT_SANITIZER address)
  set(ONNX_REINIT_SANITIZER_FLAGS -fsanitize=address,undefined)
  add_compile_options(${ONNX_REINIT_SANITIZER_FLAGS} -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(${ONNX_REINIT_SANITIZER_FLAGS})
elseif(onnx_reinit_sanitize_value STREQUAL "thread")
  set(ONNX_REINIT_SANITIZER thread)
  set(ONNX_REINIT_SANITIZER_FLAGS -fsanitize=thread)
  add_compile_options(${ONNX_REINIT_SANITIZER_FLAGS} -fno-omit-frame-pointer)
  add_link_options(${ONNX_REINIT_SANITIZER_FLAGS})
elseif(onnx_reinit_sanitize_value MATCHES "^(off|no|false|0|)$")
  set(ONNX_REINIT_SANITIZER "")
  set(ONNX_REINIT_SANITIZER_FLAGS "")
else()
  message(FATAL_ERROR "ONNX_REINIT_SANITIZE=${ONNX_REINIT_SANITIZE}: "
                      "expected OFF, ON (= address: ASan and UBSan) or thread (TSan)")
endif()
