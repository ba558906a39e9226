# drift/ statistics core benchmark.  ctest runs a short smoke pass (--quick;
# label smoke: it shows the benchmark still runs, it tests no behaviour);
# record numbers from a full run: <build>/.../bench_drift
add_executable(bench_drift ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_drift.c)
featd_warnings(bench_drift)
target_link_libraries(bench_drift PRIVATE featd_stats)
add_test(NAME bench_drift_quick COMMAND bench_drift --quick)
set_tests_properties(bench_drift_quick PROPERTIES LABELS "smoke;bench;drift")

# Exact KS p-value, featd against SciPy in the same run (a benchmark: it
# asserts agreement, never time).  ctest runs a smoke pass (--quick); record
# numbers from a full run, see the script's docstring.
featd_py_test(bench_ks_exact_smoke SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_ks_exact.py
              LABELS smoke bench drift TIMEOUT 300
              ARGS --cli $<TARGET_FILE:featd_stats_cli> --quick)
