# drift/ statistics core: Check unit tests (tests/unit/test_drift_*.c).
foreach(t kll ks divergence catfreq)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_drift_${t}.c)
    featd_check_test(test_drift_${t}
                     SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_drift_${t}.c
                     LIBS featd_stats
                     LABELS drift)
  endif()
endforeach()
featd_check_test(test_hll SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_hll.c LIBS featd_stats LABELS drift)
featd_check_test(test_drift_monitor SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_drift_monitor.c
                 LIBS featd_drift LABELS drift)
