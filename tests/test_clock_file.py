"""The test clock of ``medsettle serve --clock-file`` (medsettle.seams.OffsetClock): the real clock moved by whole
seconds kept in a file, read again whenever the file changes, so a scenario test moves a served centre's days on
while it runs (scenario files' live mode, docs/scenarios.md).

The served centre's sign-in day, its journal and its gateway's timestamp check all follow the file: a request
signed on the real clock is refused once the centre's clock is moved two days on, one signed on the moved clock
is answered. A file that holds no number is one Error line naming the option, before any journal is opened.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from medsettle.seams import ClockFileError, OffsetClock
from medsettle.testing.centre import RunningCentre, envelope
from medsettle.timeutil import SHANGHAI

PHARMACY = "P13010000001"


def test_the_offset_is_read_again_when_the_file_changes(tmp_path):
    path = tmp_path / "clock"
    writer, reader = OffsetClock(path), OffsetClock(path)
    assert reader.offset() == 0 and abs(reader.time() - dt.datetime.now(SHANGHAI).timestamp()) < 5  # no file yet
    start = dt.datetime(2026, 12, 31, 15, 0, tzinfo=SHANGHAI)
    writer.set_now(start)
    assert dt.timedelta(0) <= reader.now() - start < dt.timedelta(seconds=5)  # the other reader follows the file
    writer.advance(2 * 86_400)
    assert reader.now().date() == dt.date(2027, 1, 2)
    offset = reader.offset()
    writer.advance(-3600)  # never back
    writer.advance_to(start)  # an earlier time: nothing moves
    assert reader.offset() == offset
    path.write_text("tomorrow\n")  # not a number: the last offset read stays
    assert reader.offset() == offset
    with pytest.raises(ClockFileError, match="whole seconds"):
        OffsetClock(path)  # but a clock is never made on it
    assert abs(reader.monotonic() - OffsetClock(tmp_path / "other").monotonic()) < 5  # monotonic time is real


def test_serve_refuses_a_clock_file_that_holds_no_offset(tmp_path):
    clock = tmp_path / "clock"
    clock.write_text("2027-01-02\n")
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "serve", "--port", "0", "--data-dir", str(data),
         "--clock-file", str(clock)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("Error: --clock-file: ") and str(clock) in line and "Traceback" not in proc.stderr
    assert not (data / "centre.db").exists()


def test_a_served_centre_keeps_the_time_of_its_clock_file(tmp_path):
    clock_file = tmp_path / "clock"
    OffsetClock(clock_file).set_now(dt.datetime(2026, 12, 31, 23, 0, tzinfo=SHANGHAI))
    with RunningCentre(tmp_path / "centre", clock_file=clock_file) as centre:
        assert centre.sign_in(PHARMACY).startswith("20261231")
        centre.clock.advance(2 * 86_400)  # while it runs
        assert centre.sign_in(PHARMACY).startswith("20270102")
        # Signed on the real clock: two days from the centre's, refused by its gateway naming the timestamp.
        body = envelope("9001", {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}},
                        institution=PHARMACY, sign_no="", msgid=f"{PHARMACY}202701020900000001")  # fmt: skip
        headers = {"Content-Type": "application/json", **centre.credentials.institution(PHARMACY).headers()}
        request = urllib.request.Request(centre.url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read())
        assert answer["infcode"] != 0 and "from the centre's clock" in answer["err_msg"], answer
