pkg_check_modules(BENCH_GRPC REQUIRED IMPORTED_TARGET grpc)
add_executable(bench_rpc ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_rpc.c)
target_link_libraries(bench_rpc PRIVATE featd_rpc featd_proto featd_common PkgConfig::BENCH_GRPC pthread)
featd_warnings(bench_rpc)
