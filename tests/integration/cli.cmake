featd_py_test(integration_cli SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_cli.py LABELS integration TIMEOUT 120)
featd_py_test(integration_readme SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_readme.py LABELS integration TIMEOUT 300)
