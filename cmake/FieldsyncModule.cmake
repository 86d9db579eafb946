# fieldsync_module(<name> SOURCES ... DEPS ... ALLOWED ...)
#
# Declares the library of one top-level folder. Its headers are reached as
# "<folder>/<file>.h" from the repository root. Our own code builds with
# -Wall -Wextra -Werror; third-party headers come in as SYSTEM includes so their
# warnings do not fail our build.
#
# The dependency direction of DESIGN.md is enforced at build time: every build
# of the library first runs cmake/check_includes.cmake over its sources and
# headers, and an include of a first-party module not listed in ALLOWED fails
# the build with a message naming the file and the forbidden edge.
function(fieldsync_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

function(fieldsync_check_includes target allowed)
  set(files "")
  foreach(src IN LISTS ARGN)
    get_filename_component(abs "${src}" ABSOLUTE)
    list(APPEND files "${abs}")
  endforeach()
  string(REPLACE ";" "," files_arg "${files}")
  string(REPLACE ";" "," allowed_arg "${allowed}")
  get_filename_component(self "${CMAKE_CURRENT_SOURCE_DIR}" NAME)
  set(stamp "${CMAKE_CURRENT_BINARY_DIR}/${target}.includes.stamp")
  add_custom_command(
    OUTPUT "${stamp}"
    COMMAND ${CMAKE_COMMAND} -DFILES=${files_arg} -DALLOWED=${allowed_arg}
            -DSELF=${self} -DTARGET=${target} -DSTAMP=${stamp}
            -P "${PROJECT_SOURCE_DIR}/cmake/check_includes.cmake"
    DEPENDS ${files} "${PROJECT_SOURCE_DIR}/cmake/check_includes.cmake"
    COMMENT "Checking the include edges of ${target}"
    VERBATIM)
  target_sources(${target} PRIVATE "${stamp}")
endfunction()

function(fieldsync_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;HEADERS;DEPS;ALLOWED" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES} ${ARG_HEADERS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  fieldsync_warnings(${name})
  fieldsync_check_includes(${name} "${ARG_ALLOWED}" ${ARG_SOURCES} ${ARG_HEADERS})
  # What tests/layering checks its fixtures against: the real edge list.
  set_property(GLOBAL PROPERTY FIELDSYNC_ALLOWED_${name} "${ARG_ALLOWED}")
endfunction()
