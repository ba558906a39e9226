# The tree runtime against libxgboost's own prediction (issue 13; BENCHMARKS.md
# "Tree models").  Built when libxgboost-dev is installed; run_trees_bench.py
# trains the model with python3-xgboost and runs it.
find_library(FEATD_XGBOOST_LIB xgboost)
find_path(FEATD_XGBOOST_INC xgboost/c_api.h)
if(FEATD_XGBOOST_LIB AND FEATD_XGBOOST_INC)
  add_executable(bench_trees ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_trees.c)
  target_include_directories(bench_trees PRIVATE ${FEATD_XGBOOST_INC})
  target_link_libraries(bench_trees PRIVATE featd_train ${FEATD_XGBOOST_LIB} m)
  featd_warnings(bench_trees)
endif()
