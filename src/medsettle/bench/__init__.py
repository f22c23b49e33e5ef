"""Load tools: ``medsettle bench load`` drives a centre with many counters (on Locust), ``bench compare`` puts
two runs side by side, ``bench all`` (:mod:`.all`, :mod:`.layers`) measures every layer against its
yardstick (docs/load.md).

Only :mod:`.locustfile`, :mod:`.run` and :mod:`.worker` import Locust (and so gevent's monkeypatching); the
other modules here (flows, the mix, the figures, the report) are plain Python, so that a command that only
reads a result never patches its process, and the centre, a subprocess, never sees gevent at all.
"""
