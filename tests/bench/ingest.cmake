# Benchmarks are built with the tests and run by hand (see BENCHMARKS.md).
pkg_check_modules(BENCH_RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
add_executable(bench_ingest ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_ingest.c)
target_link_libraries(bench_ingest PRIVATE featd_ingest featd_drift featd_proto PkgConfig::BENCH_RDKAFKA)
featd_warnings(bench_ingest)
