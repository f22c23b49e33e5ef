"""medsettle's pytest plugin: fixtures for a user's own test suite (docs/testing.md).

Registered by the ``pytest11`` entry point ``medsettle``, so it loads in every pytest run of whoever
installed medsettle: this module imports only pytest and the standard library, and each fixture imports
the parts it needs when a test uses it.

- ``medsettle_centre``: a running ``medsettle serve`` (:class:`medsettle.testing.centre.RunningCentre`)
- ``medsettle_centre_factory``: start more centres (other arguments, other data directories)
- ``medsettle_counter``: ``medsettle_counter("P13010000001")`` is a :class:`medsettle.terminal.Counter`
- ``medsettle_card``: a virtual card reader and the tester's hands on it (:class:`.cards.VirtualCardRig`)
- ``medsettle_faults``: the fault proxy between counters and the centre (:class:`.proxy.FaultProxy`)
- ``medsettle_clock``: a :class:`medsettle.sim.clock.VirtualClock` for in-process, deterministic tests
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from medsettle.sim.clock import VirtualClock
    from medsettle.terminal import Counter

    from .cards import VirtualCardRig
    from .centre import RunningCentre
    from .proxy import FaultProxy

CLOCK_START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # Asia/Shanghai


@pytest.fixture()
def medsettle_centre_factory(tmp_path: Path) -> Iterator[Callable[..., RunningCentre]]:
    """``factory(*args, data_dir=None)`` starts ``medsettle serve --port 0 ... *args`` (its data directory
    in tmp_path unless given) and returns it running; every centre it started is stopped after the test."""
    from .centre import RunningCentre  # noqa: PLC0415

    started: list[RunningCentre] = []
    names = itertools.count(1)

    def start(*args: str, data_dir: Path | None = None) -> RunningCentre:
        centre = RunningCentre(data_dir or tmp_path / f"medsettle-centre-{next(names)}", args=args)
        started.append(centre)
        return centre.start()

    yield start
    for centre in reversed(started):
        centre.stop()


@pytest.fixture()
def medsettle_centre(medsettle_centre_factory: Callable[..., RunningCentre]) -> RunningCentre:
    """A running centre on 127.0.0.1 with the default world (policy, 10,000 persons, 10 institutions),
    a fresh data directory, stopped after the test. ``.url``, ``.credentials``, ``.post``, ``.admin``."""
    return medsettle_centre_factory()


@pytest.fixture()
def medsettle_faults(medsettle_centre: RunningCentre) -> Iterator[FaultProxy]:
    """The fault proxy in front of ``medsettle_centre`` (``.url``): ``drop``, ``delay``, ``reset``,
    ``blackhole``, ``heal``. Counters reach the centre through it with ``medsettle_counter(..., via_proxy=True)``."""
    from .proxy import FaultProxy  # noqa: PLC0415

    with FaultProxy(medsettle_centre.url) as proxy:
        yield proxy


@pytest.fixture()
def medsettle_counter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Counter]]:
    """``medsettle_counter(code, *, via_proxy=False, reader=None, resend_for=0.6, timeout=2.0, **options)``: a
    Counter of institution ``code`` on its own journal in tmp_path, talking to ``medsettle_centre`` (or
    through ``medsettle_faults`` with ``via_proxy``), signing with that institution's credential. Further
    ``options`` go to :class:`medsettle.terminal.Counter` (``clock``, ``crash_at``, ...). Not signed in yet."""
    from medsettle.terminal import CentreClient, Counter, CounterStore  # noqa: PLC0415

    made: list[Counter] = []
    numbers = itertools.count(1)

    def make(
        code: str,
        *,
        via_proxy: bool = False,
        reader: Any = None,
        resend_for: float = 0.6,  # ok-float: seconds
        timeout: float = 2.0,  # ok-float: seconds
        journal: Path | None = None,
        **options: Any,
    ) -> Counter:
        centre: RunningCentre = request.getfixturevalue("medsettle_centre")
        url = request.getfixturevalue("medsettle_faults").url if via_proxy else centre.url
        client = CentreClient(url, timeout=timeout, credential=centre.credentials.institution(code))
        store = CounterStore(journal or tmp_path / f"medsettle-counter-{code}-{next(numbers)}.db")
        counter = Counter(code, store, client, reader=reader, resend_for=resend_for, **options)
        made.append(counter)
        return counter

    yield make
    for counter in made:
        counter.journal.close()


@pytest.fixture()
def medsettle_card(request: pytest.FixtureRequest) -> Iterator[VirtualCardRig]:
    """A virtual card reader (``.reader``, for ``medsettle_counter(..., reader=medsettle_card.reader)``) and
    ``issue``, ``insert``, ``pull``, ``fault``, ``fail_psam``, ``repair``. With ``medsettle_centre`` in the
    test, cards are personalised from that centre's records; otherwise from the default population."""
    from .cards import VirtualCardRig  # noqa: PLC0415

    card_record = None
    if "medsettle_centre" in request.fixturenames:

        def card_record(psn_no: str) -> dict:
            answer = request.getfixturevalue("medsettle_centre").admin("card_record", psn_no=psn_no)
            if not answer.get("ok", True) or "card_no" not in answer:
                raise AssertionError(f"the centre has no card record of {psn_no}: {answer}")
            return dict(answer)

    with VirtualCardRig(card_record=card_record) as rig:
        yield rig


@pytest.fixture()
def medsettle_clock() -> VirtualClock:
    """A virtual clock at 2026-03-02 09:00 Asia/Shanghai that moves only when advanced (``.advance(s)``,
    ``.advance_to(when)``) or slept on: the clock seam of an in-process world (Counter, Centre, readers)."""
    from medsettle.sim.clock import VirtualClock  # noqa: PLC0415

    return VirtualClock(CLOCK_START)


__all__: Sequence[str] = (
    "medsettle_card",
    "medsettle_centre",
    "medsettle_centre_factory",
    "medsettle_clock",
    "medsettle_counter",
    "medsettle_faults",
)
