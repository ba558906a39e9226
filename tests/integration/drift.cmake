# drift/ statistics core: the CLI the Python test drives, and the test itself
# (hundreds of random cases compared with SciPy / NumPy; about a minute).
add_executable(featd_stats_cli ${PROJECT_SOURCE_DIR}/stats/tools/stats_cli.c)
featd_warnings(featd_stats_cli)
target_link_libraries(featd_stats_cli PRIVATE featd_stats)

featd_py_test(drift_stats SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/drift_stats.py
              LABELS integration drift TIMEOUT 900
              ARGS --cli $<TARGET_FILE:featd_stats_cli>)

# KL, PSI and JS as the monitor computes them (feat_divergences, the numeric
# path from KLL sketches, categories) against scipy.stats.entropy,
# jensenshannon and NumPy on the same bins; about 10 s.
featd_py_test(drift_divergence SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/drift_divergence.py
              LABELS integration drift TIMEOUT 300
              ARGS --cli $<TARGET_FILE:featd_stats_cli>)
