# Aggregation benchmarks (issue 11; BENCHMARKS.md "Aggregations").  ctest runs
# smoke passes (label smoke: they show the benchmarks still run; bench_aggs
# also fails if an entity's tiles outgrow the 7d window, never on time);
# record numbers from full runs, see BENCHMARKS.md.
add_executable(bench_aggs ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_aggs.c)
featd_warnings(bench_aggs)
target_link_libraries(bench_aggs PRIVATE featd_store featd_common)
add_test(NAME bench_aggs_quick COMMAND bench_aggs --quick)
set_tests_properties(bench_aggs_quick PROPERTIES LABELS "smoke;bench")
# ingest with and without 10 aggregations, one short round
add_test(NAME bench_ingest_aggs_quick COMMAND bench_ingest --only aggs --rounds 1 --events 20000)
set_tests_properties(bench_ingest_aggs_quick PROPERTIES LABELS "smoke;bench")
# serving and freshness: aggregates against plain features, a few calls
featd_py_test(run_agg_bench_smoke SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/bench/run_agg_bench.py
              LABELS smoke bench TIMEOUT 300 ARGS --quick)
