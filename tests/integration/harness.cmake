# The Python harness's own self-test (tests/integration/harness.py): a failed
# assert in a worker thread fails the run, and the shared helpers do what
# they say.  No featd, a few seconds: part of the unit set.
featd_py_test(harness_selftest SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_harness.py
              LABELS unit harness TIMEOUT 120)
