featd_check_test(test_decode SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_decode.c LIBS featd_decode featd_proto)
