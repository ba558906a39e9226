featd_py_test(integration_ingest_e2e SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_ingest_e2e.py
              LABELS integration TIMEOUT 300)
