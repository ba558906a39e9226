# Disk trouble: read-only and full data_dir (mounts a tmpfs; skips without root or mount).
featd_py_test(integration_disk SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_disk.py
              LABELS integration TIMEOUT 300)
