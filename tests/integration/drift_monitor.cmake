featd_py_test(integration_drift SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_drift.py LABELS integration TIMEOUT 400)
