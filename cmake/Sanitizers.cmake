# IPCBENCH_SANITIZE=address,undefined or thread: instrument every target.
# (Set before the targets are created, so it applies to all of them.)
# scripts/sanitize builds and runs the tests this way.
if(IPCBENCH_SANITIZE)
  # -g1: line tables, so every frame of a report names its file and line, at
  # about three quarters of the compile time of full debug info (-g).
  set(_ipcbench_san_flags -fsanitize=${IPCBENCH_SANITIZE} -fno-omit-frame-pointer -g1)
  if(IPCBENCH_SANITIZE MATCHES "undefined")
    list(APPEND _ipcbench_san_flags -fno-sanitize-recover=undefined)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC's manual: the sanitizers' instrumentation makes -Wmaybe-uninitialized
    # report false positives (seen in <regex>'s std::function with GCC 12),
    # which IPCBENCH_WERROR would turn into errors. The plain build keeps it.
    list(APPEND _ipcbench_san_flags -Wno-maybe-uninitialized)
    if(IPCBENCH_SANITIZE MATCHES "thread")
      # -Wtsan: TSan does not model std::atomic_thread_fence. The shared-memory
      # ring's seq_cst fences only order its sleep/wake flags (atomics, never
      # reported as races); the payload is published with release/acquire on
      # the counts, which TSan does check.
      list(APPEND _ipcbench_san_flags -Wno-tsan)
    endif()
  endif()
  add_compile_options(${_ipcbench_san_flags})
  add_link_options(-fsanitize=${IPCBENCH_SANITIZE})
endif()
