import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

ENGINES = ("core", "reference")


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """Every settlement test runs on both engines. A missing core fails the core runs, loudly."""
    return request.param


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session; skipped (with the reason) only where it is not installed."""
    from pg import PostgresServer, find_bindir

    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed on this machine (.ci/run installs it)")
    server = PostgresServer()
    yield server
    server.stop()
