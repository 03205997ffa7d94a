# Installs the project into a temporary prefix, then configures, builds and runs the consumer against it.
set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${WORK})
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD};--prefix;${prefix}"
    "${CMAKE_COMMAND};-S;${SRC}/tests/consumer;-B;${WORK}/build;-DCMAKE_PREFIX_PATH=${prefix};-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${WORK}/build;-j2"
    "${WORK}/build/consumer")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${step}\n${out}\n${err}")
  endif()
endforeach()
if(NOT EXISTS ${prefix}/bin/contrastive OR NOT EXISTS ${prefix}/include/contrastive/losses.h)
  message(FATAL_ERROR "install tree lacks bin/contrastive or include/contrastive/losses.h")
endif()
message(STATUS "consumer built and ran against ${prefix}")
