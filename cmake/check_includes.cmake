cmake_minimum_required(VERSION 3.25)
# Script mode: cmake -DFILES=a,b -DALLOWED=x,y -DSELF=dir -DTARGET=t -DSTAMP=f -P check_includes.cmake
# Fails when one of FILES includes a header of a first-party module that is
# neither SELF nor in ALLOWED. "fieldsync/..." headers belong to the proto module.
string(REPLACE "," ";" files "${FILES}")
string(REPLACE "," ";" allowed "${ALLOWED}")
set(modules base proto storage sync domain server clients)
foreach(path IN LISTS files)
  file(STRINGS "${path}" includes REGEX "^#include \"")
  foreach(line IN LISTS includes)
    if(NOT line MATCHES "^#include \"([a-z_]+)/")
      continue()
    endif()
    set(mod "${CMAKE_MATCH_1}")
    if(mod STREQUAL "fieldsync")
      set(mod proto)
    endif()
    if(mod STREQUAL "${SELF}" OR NOT mod IN_LIST modules)
      continue()
    endif()
    if(NOT mod IN_LIST allowed)
      message(FATAL_ERROR
        "${path}: '${line}' is a forbidden edge ${SELF} -> ${mod}; "
        "${TARGET} may depend only on: ${ALLOWED} (see DESIGN.md).")
    endif()
  endforeach()
endforeach()
file(TOUCH "${STAMP}")
