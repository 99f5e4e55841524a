# Installs the whole project (every component) into PREFIX, fails if any
# installed file names the build or the source directory, and checks that
# the installed command loads the installed standard plugin by itself: an
# installed program must never look into, or load code from, the tree it
# was built in (other local users may be able to write there).
#
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DPREFIX=... -DBINDIR=... -DSTRIP=...
#         -P check_install_paths.cmake
#
# Binaries are checked after `strip --strip-debug`: debug information
# records where the sources were compiled by design, and packagers split it
# off; every other section (string literals, RPATH) is checked as installed.
foreach(var BUILD_DIR SOURCE_DIR PREFIX BINDIR STRIP)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_install_paths: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX}
                OUTPUT_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_install_paths: cmake --install failed (${rc})")
endif()

# The paths as regular expressions, each followed by a character that
# cannot continue a file name, so that /x/build does not match /x/build-release.
set(patterns "")
foreach(dir ${BUILD_DIR} ${SOURCE_DIR})
  file(REAL_PATH ${dir} real)
  foreach(path ${dir} ${real})
    string(REGEX REPLACE "/+$" "" path "${path}")
    string(REGEX REPLACE "([][+.*()^$?|\\\\{}])" "\\\\\\1" escaped "${path}")
    list(APPEND patterns "${escaped}([^A-Za-z0-9_.+-]|$)")
  endforeach()
endforeach()
list(REMOVE_DUPLICATES patterns)
list(JOIN patterns "|" regex)

set(scratch ${PREFIX}.stripped)
file(REMOVE_RECURSE ${scratch})
file(MAKE_DIRECTORY ${scratch})
file(GLOB_RECURSE installed LIST_DIRECTORIES false ${PREFIX}/*)
list(LENGTH installed count)
if(count LESS 5)
  message(FATAL_ERROR "check_install_paths: only ${count} files installed in ${PREFIX}")
endif()
set(offending "")
set(binaries 0)
foreach(file ${installed})
  set(checked ${file})
  file(READ ${file} magic LIMIT 8 HEX)
  # ELF objects and executables (7f 'E' 'L' 'F') and static archives ("!<arch>").
  if(magic MATCHES "^7f454c46" OR magic STREQUAL "213c617263683e0a")
    get_filename_component(name ${file} NAME)
    set(checked ${scratch}/${binaries}_${name})
    math(EXPR binaries "${binaries} + 1")
    execute_process(COMMAND ${STRIP} --strip-debug -o ${checked} ${file}
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "check_install_paths: ${STRIP} failed on ${file}: ${err}")
    endif()
  endif()
  file(STRINGS ${checked} hits REGEX "${regex}")
  if(hits)
    list(GET hits 0 first)
    string(APPEND offending "  ${file}: ${first}\n")
  endif()
endforeach()
file(REMOVE_RECURSE ${scratch})
if(binaries EQUAL 0)
  message(FATAL_ERROR "check_install_paths: no binaries among the ${count} installed files")
endif()
if(offending)
  message(FATAL_ERROR "installed files name the build or source directory:\n${offending}")
endif()
# The installed command finds the installed plugins by itself (the relative
# rule), with no help from the environment.
cmake_path(ABSOLUTE_PATH BINDIR BASE_DIRECTORY ${PREFIX} OUTPUT_VARIABLE bindir)
set(tool ${bindir}/onnx-reinit)
if(NOT EXISTS ${tool})
  message(FATAL_ERROR "check_install_paths: ${tool} was not installed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=ONNX_REINIT_PLUGIN_PATH ${tool} --list
                OUTPUT_VARIABLE listing ERROR_VARIABLE err RESULT_VARIABLE rc)
file(REAL_PATH ${PREFIX} real_prefix)
string(REGEX REPLACE "([][+.*()^$?|\\\\{}])" "\\\\\\1" real_prefix "${real_prefix}")
if(NOT rc EQUAL 0 OR NOT listing MATCHES "kaiming_normal"
   OR NOT listing MATCHES "${real_prefix}/[^ \n]*/onnx-reinit/plugins/standard\\.so")
  message(FATAL_ERROR "the installed onnx-reinit --list did not load the installed standard "
                      "plugin (${rc}):\n${listing}${err}")
endif()
message(STATUS "check_install_paths: ${count} files (${binaries} binaries) free of build paths")
