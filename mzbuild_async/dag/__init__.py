"""Algorithms on DAGs that the scheduler, ``plan`` and the pipeline cutter share:
disjoint sets (:mod:`.unionfind`), longest paths (:mod:`.paths`) and one
list-scheduling simulator (:mod:`.simulate`). Pure, no I/O, no recursion."""
