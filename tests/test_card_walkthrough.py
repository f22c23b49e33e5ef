"""The card stack as a newcomer meets it: README's walkthrough with every default from a fresh directory,
the hand script from there too, and the everyday mistakes (a stack that cannot start, no pyscard, a
misspelt fault) each ending in one ``Error:`` line that says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsettle.hardware import apdu as A
from medsettle.hardware.stack import PcscStack, pcscd_failure, unavailable_reason, vpcd_driver

from hw import registry, skip_without_pcsc

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]
WALKTHROUGH = (
    "medsettle hardware up && medsettle card issue && medsettle card read --pin 123456 && medsettle hardware down"
)
WITHOUT_PYSCARD = "import sys; sys.modules['smartcard'] = None; from medsettle.cli import main; main()"


def user_env() -> dict[str, str]:
    """A user's environment: this Python's scripts on PATH, no hardware directory chosen for them."""
    env = {k: v for k, v in os.environ.items() if k != "MEDSETTLE_HARDWARE_DIR"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def medsettle(*args: str, cwd: Path | None = None, python: tuple[str, ...] = ("-m", "medsettle.cli")):
    return subprocess.run(
        [sys.executable, *python, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=user_env()
    )


def one_error_line(result) -> str:
    """The single line a failed command printed: exit status 1, 'Error: ...', no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr and 'File "' not in result.stderr
    return lines[0]


def test_readme_card_walkthrough_works_with_every_default_from_a_fresh_directory(tmp_path):
    skip_without_pcsc()
    assert WALKTHROUGH in (REPO / "README.md").read_text(encoding="utf-8")
    try:
        run = subprocess.run(
            WALKTHROUGH, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=90, env=user_env()
        )
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        subprocess.run(
            [sys.executable, "-m", "medsettle.cli", "hardware", "down"],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            env=user_env(),
        )
    card = json.loads(run.stdout[run.stdout.index("{") : run.stdout.rindex("}") + 1])
    first = registry().identities[registry().population.psn_nos[0]]
    assert (card["certno"], card["name"], card["reader"]) == (first.certno, first.psn_name, "Counter 00 00")
    assert card["pin_verified"] and card["authenticated"]
    assert run.stdout.rstrip().endswith("stopped")
    assert (tmp_path / "medsettle-data" / "hardware" / "pcscd.log").exists()  # the default dir, under the cwd


def test_the_hand_script_takes_a_relative_directory_from_anywhere(tmp_path):
    skip_without_pcsc()
    script = str(REPO / "hardware" / "pcsc-stack")
    try:
        up = subprocess.run(
            [script, "up", "hw", "Desk 9"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=user_env()
        )
        assert up.returncode == 0 and "'Desk 9 00 00'" in up.stdout, up.stdout + up.stderr
    finally:
        down = subprocess.run(
            [script, "down", "hw"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=user_env()
        )
    assert down.stdout.strip() == "stopped", down.stdout + down.stderr


def test_the_stack_hands_pcscd_only_absolute_paths(tmp_path, monkeypatch):
    if vpcd_driver() is None:
        pytest.skip("the vpcd reader driver is not installed (apt-get install vsmartcard-vpcd)")
    monkeypatch.chdir(tmp_path)
    stack = PcscStack(Path("medsettle-data") / "hardware", ["Desk"])
    stack.workdir.mkdir(parents=True)
    stack._write_config()
    assert stack.conf_dir.is_absolute() and stack.log_path.is_absolute()
    conf = (stack.conf_dir / "00-counter.conf").read_text()
    library = next(line.split(None, 1)[1] for line in conf.splitlines() if line.startswith("LIBPATH"))
    assert Path(library).is_absolute() and Path(library).exists()


def test_a_stack_that_cannot_start_says_why_and_where_the_log_is_in_one_line(tmp_path):
    result = medsettle("hardware", "up", "--dir", "hw", "--counter", 'Desk "1"', cwd=tmp_path)
    line = one_error_line(result)
    assert str(tmp_path / "hw" / "daemon.log") in line
    assert ("may not contain a quote" if unavailable_reason() is None else unavailable_reason()) in line
    assert not (tmp_path / "hw" / "daemon.json").exists()


def test_pcscds_own_reason_is_taken_from_its_log():
    log = (
        "00000000 pcscdaemon.c:653:main() invalid directory medsettle-data/hardware/reader.conf.d: "
        "No such file or directory\n"
        "00000032 pcscdaemon.c:829:clean_temp_files() Cannot remove /run/pcscd/pcscd.comm: No such file\n"
    )
    assert pcscd_failure(log) == "invalid directory medsettle-data/hardware/reader.conf.d: No such file or directory"
    assert pcscd_failure("") == "it logged nothing"


def test_card_read_without_pyscard_says_how_to_install_it(tmp_path):
    line = one_error_line(medsettle("card", "read", cwd=tmp_path, python=("-c", WITHOUT_PYSCARD)))
    assert "pyscard" in line and "pip install 'medsettle[readers]'" in line


def test_without_pyscard_the_readers_package_still_serves_what_needs_no_pc_sc(monkeypatch):
    import medsettle.readers as readers

    for module in ("smartcard", "medsettle.readers.pcsc", "medsettle.readers._pyscard", "medsettle.readers.watcher"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, "smartcard", None)
    monkeypatch.delattr(readers, "pcsc", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'medsettle\[readers\]'") as missing:
        from medsettle.readers import PcscReader  # noqa: F401
    assert isinstance(missing.value, readers.ReaderError) and missing.value.code == "NO_PYSCARD"
    assert "pyscard" in unavailable_reason()
    from hw import genuine_card  # the virtual card needs no PC/SC

    assert genuine_card().process(b"\x00\xfe\x00\x00") == A.sw(A.INS_NOT_SUPPORTED)
    assert issubclass(readers.CardMute, readers.ReaderError)


@pytest.mark.parametrize(
    "words, named",
    [
        (["slow_s=abc"], "slow_s=abc"),
        (["slow_s"], "slow_s"),
        (["explode"], "explode"),
        (["mute=yes"], "mute=yes"),
        (["none", "mute"], "none"),
    ],
)
def test_a_bad_fault_word_is_one_line_naming_it_and_the_known_faults(tmp_path, words, named):
    line = one_error_line(medsettle("card", "fault", *words, "--dir", str(tmp_path)))
    assert f"'{named}'" in line
    assert "mute, slow_s=SECONDS, remove_mid_apdu, garbage, truncated, wrong_atr; none clears them all" in line


def test_the_control_socket_fits_a_unix_socket_path_however_deep_the_directory(tmp_path):
    from medsettle.hardware.daemon import SOCKET_FILE, socket_path

    assert socket_path(tmp_path) == tmp_path / SOCKET_FILE
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(os.fsencode(deep / SOCKET_FILE)) > 107  # too long for AF_UNIX (sun_path holds 108 bytes)
    placed = socket_path(deep)
    assert len(os.fsencode(placed)) <= 107 and placed.is_absolute() and placed != socket_path(tmp_path / "other")


def test_stack_error_is_one_of_medsettles_errors_with_a_stable_code():
    from medsettle.errors import MedsettleError
    from medsettle.hardware import daemon
    from medsettle.hardware.stack import StackError

    with pytest.raises(MedsettleError, match="no virtual reader stack is running") as caught:
        daemon.HardwareClient(Path("no-such-stack-dir"))
    assert isinstance(caught.value, StackError) and isinstance(caught.value, RuntimeError)
    assert caught.value.code == "STACK_ERROR"


def test_a_stack_error_line_has_no_code_as_before(tmp_path):
    """StackError is a MedsettleError now; the hardware commands still print its words alone, as before."""
    line = one_error_line(medsettle("hardware", "status", "--dir", "none", cwd=tmp_path))
    assert line == (
        f"Error: no virtual reader stack is running in {tmp_path / 'none'}: start it with 'medsettle hardware up'"
    )


def test_a_half_written_or_empty_state_file_is_one_stack_error_line(tmp_path):
    """CI once read daemon.json in the instant between its creation and its filling; the daemon now writes it
    whole (a rename), and a client that still meets an unreadable one says what to do instead of a JSON error."""
    from medsettle.hardware.daemon import STATE_FILE, _write_atomically

    (tmp_path / STATE_FILE).write_text("")
    line = one_error_line(medsettle("hardware", "status", "--dir", str(tmp_path), cwd=tmp_path))
    assert "state file" in line and "cannot be read" in line and "'medsettle hardware down' then 'up'" in line
    _write_atomically(tmp_path / STATE_FILE, '{"pid": 1, "socket": "x"}')
    assert json.loads((tmp_path / STATE_FILE).read_text()) == {"pid": 1, "socket": "x"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]  # no partial file left beside it
