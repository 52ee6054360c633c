"""``bench perf``: throughput of the harness side by side with hand-written loops and other libraries.

Every task times its contenders in one process, alternating them round-robin, and reports the median
of several repeats and the ratio to a reference contender (``suite.run_perf`` is the entry point).
"""
