# gen-man.cmake - write one manual page: run PROG ARG (its --man or
# --man-config, printed from the same tables as its --help) into OUT.
#   cmake -DPROG=bin/vdfs -DARG=--man -DOUT=man/vdfs.1 -P tools/gen-man.cmake
# A script rather than a shell redirection, so that a failing program fails
# the build instead of leaving an empty page behind.
execute_process(COMMAND ${PROG} ${ARG} OUTPUT_FILE ${OUT}.tmp RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT}.tmp)
  message(FATAL_ERROR "${PROG} ${ARG} failed (${rc}): no ${OUT}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
