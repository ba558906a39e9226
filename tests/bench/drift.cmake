# drift/ statistics core benchmark.  ctest -L bench runs a short smoke pass
# (--quick); record numbers from a full run: <build>/.../bench_drift
add_executable(bench_drift ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_drift.c)
featd_warnings(bench_drift)
target_link_libraries(bench_drift PRIVATE featd_drift_stats)
add_test(NAME bench_drift_quick COMMAND bench_drift --quick)
set_tests_properties(bench_drift_quick PROPERTIES LABELS "bench;drift")
