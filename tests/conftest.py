import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

ENGINES = ("core", "reference")


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """Every settlement test runs on both engines. A missing core fails the core runs, loudly."""
    return request.param
