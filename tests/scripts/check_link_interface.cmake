# Fails if the installed CMake package makes its users link Boost.Filesystem:
# the registry uses Boost.DLL on std::filesystem (BOOST_DLL_USE_STD_FS), so
# only Boost's headers belong in the link interface.
#
#   cmake -DPREFIX=... -P check_link_interface.cmake
if(NOT DEFINED PREFIX OR PREFIX STREQUAL "")
  message(FATAL_ERROR "check_link_interface: PREFIX is not set")
endif()
file(GLOB_RECURSE package_files ${PREFIX}/*/cmake/OnnxReinit/*.cmake)
if(NOT package_files)
  message(FATAL_ERROR "check_link_interface: no installed CMake package under ${PREFIX}")
endif()
set(found_targets FALSE)
foreach(file ${package_files})
  file(READ ${file} text)
  if(text MATCHES "Boost::filesystem|COMPONENTS[^)]*filesystem|boost_filesystem")
    message(FATAL_ERROR "check_link_interface: ${file} asks for Boost.Filesystem")
  endif()
  if(text MATCHES "OnnxReinit::registry")
    set(found_targets TRUE)
  endif()
endforeach()
if(NOT found_targets)
  message(FATAL_ERROR "check_link_interface: no file defines OnnxReinit::registry")
endif()
message(STATUS "check_link_interface: ${PREFIX}: no Boost.Filesystem in the package")
