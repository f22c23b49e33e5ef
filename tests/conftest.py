"""Fixtures every test directory shares. The helper modules beside this file (hw, pg, worlds, centre_rig, ...)
are importable because pyproject.toml's [tool.pytest.ini_options] puts tests/ on pythonpath."""

import pytest

pytest_plugins = ["centre_rig"]  # the served centre and its fixtures (one day medsettle.testing's plugin)

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


@pytest.fixture(scope="module")
def pcsc_stack():
    """A real pcscd with two counters (card slot + PSAM slot each), for one test module: cards stay
    inserted and are swapped in place between tests (pcscd's 0.4 s poll is paid only when a test
    removes a card). Skipped, with the reason, only where pcscd, vpcd or pyscard cannot run."""
    from hw import COUNTERS, DAEMON_DIR, STACK_DIR, skip_without_pcsc

    skip_without_pcsc()
    from medsettle.hardware import daemon
    from medsettle.hardware.stack import PcscStack

    daemon.stop(DAEMON_DIR)  # a CLI test's stack an interrupted run left up would own /run/pcscd

    stack = PcscStack(STACK_DIR, COUNTERS).start()
    yield stack
    stack.stop()


@pytest.fixture(params=["virtual", "pcsc"])
def reader_backend(request):
    """Each card and reader test runs on both reader backends: ``virtual`` (the card OS and PSAM on a fresh
    virtual bus in this process) always, ``pcsc`` (the module's real pcscd with vpcd readers) where pcscd,
    vpcd and pyscard are installed, skipped naming what is missing otherwise."""
    from hw import pcsc_backend, virtual_backend

    if request.param == "virtual":
        return virtual_backend()
    return pcsc_backend(request.getfixturevalue("pcsc_stack"))


@pytest.fixture
def counter(reader_backend):
    """Counter A of the backend's stack with a genuine card in it (no faults, PIN tries reset), ready to read."""
    from hw import genuine_card

    slot = reader_backend.counters["Counter A"]
    slot.card.clear_faults()
    slot.card.insert(genuine_card())
    with reader_backend.reader(slot, deadline=1.0) as probe:
        probe.wait_for_card(3)
    yield slot
    slot.card.clear_faults()


@pytest.fixture
def pcsc_counter(pcsc_stack):
    """Counter A of the real pcscd with a genuine card in it, for the tests about pcscd itself."""
    from medsettle.readers import PcscReader

    from hw import genuine_card

    slot = pcsc_stack.counters["Counter A"]
    slot.card.clear_faults()
    slot.card.insert(genuine_card())
    with PcscReader(slot.card_reader, psam=slot.psam_reader, deadline=1.0) as probe:
        probe.wait_for_card(3)
    yield slot
    slot.card.clear_faults()


@pytest.fixture(scope="module")
def centres(tmp_path_factory):
    """The module's served centres, one per engine, each started when a test first asks for it and shared by
    the module's tests (terminal_rig.SharedCentres): each test works at its own copy of an institution."""
    from terminal_rig import SharedCentres

    shared = SharedCentres(tmp_path_factory.mktemp("centres"))
    yield shared
    shared.close()


@pytest.fixture()
def centre(centres):
    """The module's shared centre on the core engine (a module may define its own ``centre``)."""
    return centres("core")
