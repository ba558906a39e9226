# Streaming window aggregations (issue 11) against an independent Python
# reference (tests/integration/aggref.py): historical reads at thousands of
# (entity, t) points, online reads as of now, online == historical to the bit,
# lateness, dead letters, and bad declarations (exit 2 naming the key).
featd_py_test(integration_aggregations SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_aggregations.py
              LABELS integration TIMEOUT 600)
