# Finds ONNX Runtime (C/C++ API) as installed by tools/fetch_onnxruntime.sh
# and gives the imported target onnxruntime::onnxruntime.
# Hint: ONNXRUNTIME_ROOT (cache path or environment variable), the prefix
# holding include/onnxruntime_cxx_api.h and lib/libonnxruntime.so.1. Default:
# ${ONNX_REINIT_DEPS_DIR:-$HOME/.cache/onnx-reinit/deps}/onnxruntime-1.29.0.
# Sets onnxruntime_FOUND, onnxruntime_LIBRARY (the versioned file the tool
# must ship beside itself: its symbols are versioned) and
# onnxruntime_API_VERSION.
set(_ort_default_root "$ENV{HOME}/.cache/onnx-reinit/deps/onnxruntime-1.29.0")
if(DEFINED ENV{ONNX_REINIT_DEPS_DIR})
  set(_ort_default_root "$ENV{ONNX_REINIT_DEPS_DIR}/onnxruntime-1.29.0")
endif()
if(DEFINED ENV{ONNXRUNTIME_ROOT} AND NOT ONNXRUNTIME_ROOT)
  set(ONNXRUNTIME_ROOT "$ENV{ONNXRUNTIME_ROOT}")
endif()
set(ONNXRUNTIME_ROOT "${ONNXRUNTIME_ROOT}" CACHE PATH "Prefix of ONNX Runtime (tools/fetch_onnxruntime.sh)")

find_path(onnxruntime_INCLUDE_DIR onnxruntime_cxx_api.h
  HINTS ${ONNXRUNTIME_ROOT}/include ${_ort_default_root}/include NO_DEFAULT_PATH)
find_path(onnxruntime_INCLUDE_DIR onnxruntime_cxx_api.h PATH_SUFFIXES onnxruntime)
find_library(onnxruntime_LIBRARY NAMES libonnxruntime.so.1 onnxruntime
  HINTS ${ONNXRUNTIME_ROOT}/lib ${_ort_default_root}/lib NO_DEFAULT_PATH)
find_library(onnxruntime_LIBRARY NAMES libonnxruntime.so.1 onnxruntime)

if(onnxruntime_INCLUDE_DIR AND EXISTS ${onnxruntime_INCLUDE_DIR}/onnxruntime_c_api.h)
  file(STRINGS ${onnxruntime_INCLUDE_DIR}/onnxruntime_c_api.h _ort_api_line
       REGEX "^#define ORT_API_VERSION [0-9]+")
  string(REGEX REPLACE "^#define ORT_API_VERSION ([0-9]+).*" "\\1" onnxruntime_API_VERSION
                       "${_ort_api_line}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(onnxruntime
  REQUIRED_VARS onnxruntime_LIBRARY onnxruntime_INCLUDE_DIR
  VERSION_VAR onnxruntime_API_VERSION)

if(onnxruntime_FOUND AND NOT TARGET onnxruntime::onnxruntime)
  add_library(onnxruntime::onnxruntime SHARED IMPORTED)
  set_target_properties(onnxruntime::onnxruntime PROPERTIES
    IMPORTED_LOCATION ${onnxruntime_LIBRARY}
    IMPORTED_SONAME libonnxruntime.so.1
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES ${onnxruntime_INCLUDE_DIR}
    INTERFACE_INCLUDE_DIRECTORIES ${onnxruntime_INCLUDE_DIR})
endif()
mark_as_advanced(onnxruntime_INCLUDE_DIR onnxruntime_LIBRARY)
