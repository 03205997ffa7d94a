# Installs the project into a temporary prefix, then configures, builds and runs the consumer against it.
# PREFIXES ('|'-separated) and CUDA_* are the build's own LibTorch settings: a consumer of a pip-wheel build must
# point at the same LibTorch (and its nvcc), or find_package(Torch) takes another one (Debian's) and the link fails.
set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${WORK})
set(prefixes ${prefix})
if(PREFIXES)
  string(REPLACE "|" "\\;" extra "${PREFIXES}")
  set(prefixes "${prefix}\\;${extra}")
endif()
set(cuda_args "")
if(CUDA_COMPILER)
  set(cuda_args ";-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER};-DCUDAToolkit_ROOT=${CUDA_ROOT};-DTORCH_CUDA_ARCH_LIST=${CUDA_ARCHS}")
endif()
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD};--prefix;${prefix}"
    "${CMAKE_COMMAND};-S;${SRC}/tests/consumer;-B;${WORK}/build;-DCMAKE_PREFIX_PATH=${prefixes};-DCMAKE_BUILD_TYPE=Release;-DEXAMPLES=${SRC}/examples${cuda_args}"
    "${CMAKE_COMMAND};--build;${WORK}/build;-j2"
    "${WORK}/build/consumer"
    "${WORK}/build/custom_loop;256;3"
    "${WORK}/build/trainer_callbacks;256;2;${WORK}/run"
    "${WORK}/build/dcl;methods"
    "${WORK}/build/dcl;train;--help"
    "${WORK}/build/dcl;train;--method;dcl;--dataset;fashion-mnist;--train-subset;1024;--test-subset;512;--epochs;3;--width;8;--batch-size;128;--lr;0.3;--temperature;0.2;--threads;2;--tensorboard;off;--out;${WORK}/dcl-run")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${step}\n${out}\n${err}")
  endif()
  if(step MATCHES "custom_loop" AND NOT out MATCHES "custom_loop: 3 steps, loss .* ok")
    message(FATAL_ERROR "examples/custom_loop did not report 3 finite steps:\n${out}")
  endif()
  if(step MATCHES "dcl;methods" AND NOT out MATCHES "dcl +DCL: SimCLR without the positive pair")
    message(FATAL_ERROR "examples/dcl: `methods` does not list the registered method:\n${out}")
  endif()
  if(step MATCHES "dcl;train;--help" AND NOT out MATCHES "dcl: 0\\.1")
    message(FATAL_ERROR "examples/dcl: `train --help` does not show the method's options:\n${out}")
  endif()
  if(step MATCHES "trainer_callbacks" AND NOT out MATCHES "trainer_callbacks: 2 epochs, 8 steps, loss .* ok")
    message(FATAL_ERROR "examples/trainer_callbacks did not report 2 epochs of 8 finite steps:\n${out}")
  endif()
endforeach()
if(NOT EXISTS ${WORK}/run/last.ckpt OR NOT EXISTS ${WORK}/run/metrics.jsonl)
  message(FATAL_ERROR "examples/trainer_callbacks wrote no last.ckpt and metrics.jsonl into its run directory")
endif()
file(STRINGS ${WORK}/run/metrics.jsonl records)
list(LENGTH records n)
if(NOT n EQUAL 2 OR NOT records MATCHES "worst_step_loss")
  message(FATAL_ERROR "examples/trainer_callbacks: metrics.jsonl should hold 2 records with worst_step_loss:\n${records}")
endif()
# The registered method trained by the library's Trainer: 3 epochs written, its loss falling.
file(STRINGS ${WORK}/dcl-run/metrics.jsonl records)
list(LENGTH records n)
if(NOT n EQUAL 3)
  message(FATAL_ERROR "examples/dcl: metrics.jsonl should hold 3 records:\n${records}")
endif()
list(GET records 0 first)
list(GET records 2 last)
string(JSON loss_first GET "${first}" loss)
string(JSON loss_last GET "${last}" loss)
if(NOT loss_last LESS loss_first)
  message(FATAL_ERROR "examples/dcl: the loss did not fall over 3 epochs (${loss_first} -> ${loss_last})")
endif()
message(STATUS "examples/dcl: loss ${loss_first} -> ${loss_last} over 3 epochs")
if(NOT EXISTS ${prefix}/bin/contrastive OR NOT EXISTS ${prefix}/include/contrastive/contrastive.h)
  message(FATAL_ERROR "install tree lacks bin/contrastive or include/contrastive/contrastive.h")
endif()
message(STATUS "consumer built and ran against ${prefix}")
