featd_check_test(test_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c LIBS featd_common)
featd_check_test(test_json SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_json.c LIBS featd_common)
featd_check_test(test_metrics SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics.c LIBS featd_common)
featd_check_test(test_utf8 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_utf8.c LIBS featd_common)
