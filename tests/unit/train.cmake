# train/: point-in-time training sets, the registry, triggers and live quality
# against a real store (train/core's own tests are in train/core/tests).
featd_check_test(test_train SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_train.c
                 LIBS featd_train featd_store featd_common)
