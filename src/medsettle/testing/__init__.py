"""Testing medsettle from a user's own test suite: a pytest plugin (:mod:`.plugin`, registered by entry point)
whose fixtures start a real centre process, counters against it, virtual cards and a fault proxy between them
(docs/testing.md).

This package imports nothing at import time: the plugin loads in every pytest run of whoever installed
medsettle, so the centre, the counter and the card parts are imported only when a fixture is used.
"""
