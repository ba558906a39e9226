featd_check_test(test_store SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_store.c LIBS featd_store)
featd_check_test(test_tile SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tile.c LIBS featd_store)
