featd_py_test(integration_ingest_e2e SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_ingest_e2e.py
              LABELS integration TIMEOUT 300)
featd_py_test(integration_crash SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_crash.py
              LABELS integration TIMEOUT 600)
featd_py_test(long_crash SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_crash.py
              LABELS long TIMEOUT 3600 ARGS --long --kills 25 --events 300000)
featd_py_test(integration_broker_faults SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_broker_faults.py
              LABELS integration TIMEOUT 300)
featd_py_test(long_broker_faults SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_broker_faults.py
              LABELS long TIMEOUT 1800 ARGS --long --rounds 4 --outage 60)
featd_py_test(integration_gaps SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_gaps.py
              LABELS integration TIMEOUT 300)
featd_py_test(long_readme_soak SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_readme_soak.py
              LABELS long TIMEOUT 2400 ARGS --long --minutes 30)
featd_py_test(integration_differential SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_differential.py
              LABELS integration TIMEOUT 300)
featd_py_test(long_differential SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_differential.py
              LABELS long TIMEOUT 3600 ARGS --long)
