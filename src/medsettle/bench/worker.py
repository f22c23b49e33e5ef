"""A load worker: ``python -m medsettle.bench.worker --master-host HOST [--master-port 5557] [--flows FILE]``.

``medsettle bench load --workers W`` starts W of these on this machine; on another machine, start them by
hand against the master's address (docs/load.md 'Workers on other machines'). A worker runs counters as the
master's configuration says (the centre's URL and credentials, the persons, the mix) and reports its
figures to the master about once a second. ``locust -f <this package>/locustfile.py --worker
--master-host HOST`` works too.
"""

from __future__ import annotations

import argparse
import sys

import locust.runners
from locust import events  # Locust patches the process with gevent here (the modules above are whole: patched too)
from locust.env import Environment

from . import locustfile
from .centre import raise_open_files
from .mix import MixError
from .plugins import load_flows

REPORT_EVERY = 1.0  # ok-float: seconds between two reports to the master (Locust's default is 3)


def main(argv: list[str] | None = None) -> int:
    """Connect to the master and run counters until it says quit."""
    parser = argparse.ArgumentParser(prog="python -m medsettle.bench.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--master-host", default="127.0.0.1", help="The master's address (bench load --master-bind).")
    parser.add_argument("--master-port", type=int, default=5557, help="The master's port (bench load --master-port).")
    parser.add_argument("--flows", action="append", default=[], metavar="FILE", help="A file of your own flows.")
    args = parser.parse_args(argv)
    try:
        load_flows(args.flows)
    except MixError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    raise_open_files()  # one connection a counter: as the master does
    locust.runners.WORKER_REPORT_INTERVAL = REPORT_EVERY
    env = Environment(user_classes=[locustfile.Counter], events=events)
    runner = env.create_worker_runner(args.master_host, args.master_port)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.greenlet.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
