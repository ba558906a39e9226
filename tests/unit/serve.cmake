featd_check_test(test_cache SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cache.c LIBS featd_serve)
featd_check_test(test_auth SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_auth.c LIBS featd_serve)
featd_check_test(test_status SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_status.c LIBS featd_serve)
