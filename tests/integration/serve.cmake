featd_py_test(integration_serve SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_serve.py LABELS integration TIMEOUT 300)
featd_py_test(integration_serve_concurrency SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_serve_concurrency.py LABELS integration TIMEOUT 300)
featd_py_test(integration_models SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_models.py LABELS integration TIMEOUT 600)
featd_py_test(integration_retrain SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_retrain.py LABELS integration TIMEOUT 600)
