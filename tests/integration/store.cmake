# Disk trouble: read-only and full data_dir (mounts a tmpfs; skips without root or mount).
featd_py_test(integration_disk SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_disk.py
              LABELS integration TIMEOUT 300)
# Read-only during writes, staged with an LD_PRELOAD shim (Linux refuses a
# read-only remount while featd's WAL is open); built without sanitizers, so
# that it can be preloaded into any featd.
add_library(erofs_shim SHARED ${CMAKE_CURRENT_SOURCE_DIR}/integration/erofs_shim.c)
target_compile_options(erofs_shim PRIVATE -fno-sanitize=all)
target_link_options(erofs_shim PRIVATE -fno-sanitize=all)
target_link_libraries(erofs_shim PRIVATE dl)
featd_warnings(erofs_shim)
featd_py_test(integration_disk_ro SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_disk_ro.py
              LABELS integration TIMEOUT 300)
