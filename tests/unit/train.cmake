# train/: point-in-time training sets, the registry, triggers and live quality
# against a real store (train/core's own tests are in train/core/tests).
featd_check_test(test_train SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_train.c
                 LIBS featd_train featd_store featd_common)
# the tree runtime and the XGBoost JSON reader against python3-xgboost (test_trees.py; skipped, exit 77,
# when /usr/bin/python3 has no xgboost)
add_executable(xgb_score ${CMAKE_CURRENT_SOURCE_DIR}/unit/xgb_score.c)
target_link_libraries(xgb_score PRIVATE featd_train)
featd_warnings(xgb_score)
featd_py_test(unit_trees SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_trees.py LABELS unit TIMEOUT 300)
# trees trained by featd (feattrain --task gbdt) against python3-xgboost with the same parameters and split
featd_py_test(unit_gbdt SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_gbdt.py LABELS unit TIMEOUT 300)
