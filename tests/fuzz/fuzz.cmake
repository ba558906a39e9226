# libFuzzer targets (FEATD_FUZZ=ON, clang; the top-level CMakeLists.txt adds
# the coverage and sanitizer flags to every library).  Each target gets a
# ctest test, label fuzz, that runs it from its seed corpus
# tests/fuzz/corpus/<target>/ for FEATD_FUZZ_SECONDS (cache variable, or the
# environment variable of the same name at ctest time for a longer run).
if(FEATD_FUZZ)
  set(FEATD_FUZZ_SECONDS 30 CACHE STRING "Seconds each fuzz test runs (env FEATD_FUZZ_SECONDS overrides)")
  pkg_check_modules(FUZZ_LIBEVENT REQUIRED IMPORTED_TARGET libevent)
  set(fuzz_event_proto_libs featd_decode featd_proto)
  set(fuzz_event_json_libs featd_decode)
  set(fuzz_config_libs featd_decode featd_common)
  set(fuzz_grpc_request_libs featd_daemon)
  set(fuzz_admin_http_libs featd_daemon PkgConfig::FUZZ_LIBEVENT)
  set(fuzz_row_libs featd_store)
  set(fuzz_tile_libs featd_store)
  set(fuzz_utf8_libs featd_common)
  set(fuzz_cluster_record_libs featd_ingest featd_proto)
  set(fuzz_models_record_libs featd_train)
  set(fuzz_xgb_json_libs featd_train)
  set(fuzz_pbjson_libs featd_pbjson)
  set(fuzz_resp_libs featd_common)
  set(fuzz_redis_libs featd_daemon)
  foreach(t fuzz_event_proto fuzz_event_json fuzz_config fuzz_grpc_request fuzz_admin_http fuzz_row fuzz_tile fuzz_utf8
            fuzz_cluster_record fuzz_models_record fuzz_xgb_json fuzz_pbjson fuzz_resp fuzz_redis)
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${t}.c)
    featd_warnings(${t})
    target_link_options(${t} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${t} PRIVATE ${${t}_libs})
    add_test(NAME ${t}
             COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzz.sh $<TARGET_FILE:${t}>
                     ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${t} ${FEATD_FUZZ_SECONDS}
                     ${PROJECT_BINARY_DIR}/fuzz-artifacts/${t})
    # no ctest time-out: run_fuzz.sh bounds itself (SECONDS + 300), whatever
    # FEATD_FUZZ_SECONDS ctest's environment sets
    set_tests_properties(${t} PROPERTIES LABELS fuzz TIMEOUT 0)
  endforeach()
endif()
