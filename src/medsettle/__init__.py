"""medsettle: medical-insurance settlement at hospital and pharmacy counters, simulated with real parts.

The public entry points are :mod:`medsettle.policy` (region rules as data),
:mod:`medsettle.engine` (settlement on the Cython core or the pure-Python reference) and the
``medsettle`` command (:mod:`medsettle.cli`).
"""

__version__ = "0.1.0"
