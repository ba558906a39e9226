# tools/layers.py: the include-layering rule (docs/ARCHITECTURE.md, "Dependency
# rule").  `layers` checks this tree; test_layers_selftest checks the checker
# on small trees with bad includes, and that the document's edge table is
# the one layers.py enforces.
add_test(NAME layers COMMAND ${FEATD_PYTHON} ${PROJECT_SOURCE_DIR}/tools/layers.py)
set_tests_properties(layers PROPERTIES LABELS unit TIMEOUT 60)
featd_py_test(test_layers_selftest SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_layers.py LABELS unit TIMEOUT 60)
