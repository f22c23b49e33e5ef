"""The file transactions (docs/files.md): 9101/9102 over real HTTP, the file-based 3202, the catalogue downloads
by version, the bounds, and files kept in the journal's database (a restart, PostgreSQL)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import urllib.request
import zipfile

import pytest

from centre_rig import CODES, HOSPITAL, PHARMACY, POLICY, ServedCentre, certificate_of, first_person
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.ledger import PostgresJournal, SQLiteJournal
from medsettle.ledger import files as ledger_files

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def envelope(infno: str, input_: dict, sign_no: str, code: str = PHARMACY) -> dict:
    return {
        "infno": infno,
        "msgid": ServedCentre.next_msgid(code),
        "infver": "V1.0",
        "fixmedins_code": code,
        "sign_no": sign_no,
        "input": input_,
    }


def raw_call(centre: ServedCentre, body: dict) -> tuple[int, str, bytes]:
    """POST one envelope; (HTTP status, Content-Type, the body's bytes) as they came."""
    headers = {"Content-Type": "text/plain", **centre.signed_headers(body)}
    req = urllib.request.Request(centre.url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers.get_content_type(), resp.read()


def upload(centre: ServedCentre, sign_no: str, content: bytes, name: str = "detail.txt.zip", code: str = PHARMACY):
    answer, _ = centre.call(
        "9101",
        {"fsUploadIn": {"in": base64.b64encode(content).decode(), "filename": name, "fixmedins_code": code}},
        sign_no=sign_no,
        fixmedins_code=code,
    )
    return answer


def download(centre: ServedCentre, sign_no: str, number: str, code: str = PHARMACY) -> tuple[int, str, bytes]:
    body = envelope(
        "9102", {"fsDownloadIn": {"file_qury_no": number, "filename": "plc", "fixmedins_code": code}}, sign_no, code
    )
    return raw_call(centre, body)


def zipped(name: str, text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text.encode())
    return out.getvalue()


def unzipped(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return archive.read(archive.namelist()[0]).decode()


def test_upload_then_download_gives_the_same_bytes_to_its_owner_only_and_after_a_restart(tmp_path):
    centre = ServedCentre(tmp_path / "centre").start()
    try:
        sign_no = centre.sign_in()
        content = bytes(range(256)) * 40  # any bytes, not only text
        answer = upload(centre, sign_no, content, "any.bin")
        assert answer["infcode"] == 0, answer
        out = answer["output"]
        number = out["file_qury_no"]
        assert len(number) <= 30 and out["filename"] == "any.bin" and len(out["dld_endtime"]) == 19
        status, kind, body = download(centre, sign_no, number)
        assert (status, kind, body) == (200, "application/octet-stream", content)

        # Another institution: refused exactly as a number nobody uploaded.
        hospital = centre.sign_in(HOSPITAL)
        status, kind, theirs = download(centre, hospital, number, HOSPITAL)
        _, _, unknown = download(centre, hospital, "fsi/00000000000000000000000000", HOSPITAL)
        assert (status, kind) == (200, "application/json")
        theirs_answer, unknown_answer = json.loads(theirs), json.loads(unknown)
        assert theirs_answer["infcode"] == -1 and "input.fsDownloadIn.file_qury_no" in theirs_answer["err_msg"]
        assert theirs_answer["err_msg"].replace(number, "N") == unknown_answer["err_msg"].replace(
            "fsi/00000000000000000000000000", "N"
        )

        bad, _ = centre.call("9101", {"fsUploadIn": {"in": "not base64!", "filename": "x.zip"}}, sign_no=sign_no)
        assert bad["infcode"] == -1 and "input.fsUploadIn.in" in bad["err_msg"], bad

        centre.stop()
        centre.start()
        sign_no = centre.sign_in()
        assert download(centre, sign_no, number)[2] == content
    finally:
        centre.stop()


def sale(psn_no: str) -> dict:
    return {
        "data": {
            "psn_no": psn_no,
            **certificate_of(psn_no),
            "med_type": "41",
            "medfee_sumamt": "25.00",
            "acct_used_flag": "1",
        },
        "feedetail": [
            {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "12.50", "cnt": "2", "fee_ocur_time": "2026-03-02"}
        ],
    }


def test_the_platforms_3202_takes_its_detail_as_a_file_and_answers_a_file(served_centre):
    sign_no = served_centre.sign_in()
    psn = first_person()
    settled, _ = served_centre.call("2102", sale(psn), sign_no=sign_no)
    assert settled["infcode"] == 0, settled
    info = settled["output"]["setlinfo"]
    other, _ = served_centre.call("2102", sale(psn), sign_no=sign_no)
    missing = other["output"]["setlinfo"]["setl_id"]  # the centre has it, the institution's file will not
    mine = "\t".join(
        [
            info["setl_id"],
            info["mdtrt_id"],
            psn,
            "25.00",
            f"{info['fund_pay_sumamt']:.2f}",
            f"{info['acct_pay']:.2f}",
            "0",
        ]
    )
    text = f"{mine}\r\nNOT-THE-CENTRES\tM1\t{psn}\t9.00\t0.00\t0.00\t0\r\n"
    uploaded = upload(served_centre, sign_no, zipped("detail.txt", text))
    today = dt.datetime.now(SHANGHAI).date().isoformat()
    period = {"stmt_begndate": today, "stmt_enddate": today}
    answer, _ = served_centre.call(
        "3202",
        {
            "data": {
                **period,
                "setl_optins": "130100",
                "file_qury_no": uploaded["output"]["file_qury_no"],
                "medfee_sumamt": "34.00",
                "fund_pay_sumamt": "0.00",
                "cash_payamt": "0.00",
                "fixmedins_setl_cnt": 2,
            }
        },
        sign_no=sign_no,
    )
    assert answer["infcode"] == 0, answer
    fileinfo = answer["output"]["fileinfo"]
    assert set(fileinfo) == {"file_qury_no", "filename", "dld_endtime"}
    status, kind, body = download(served_centre, sign_no, fileinfo["file_qury_no"])
    assert (status, kind) == (200, "application/octet-stream")
    rows = {line.split("\t")[0]: line.split("\t") for line in unzipped(body).splitlines()}
    assert rows[info["setl_id"]][-1] == "both" and rows[info["setl_id"]][3] == "25.00"
    assert rows[missing][-1] == "centre_only" and rows[missing][6] == "0"
    assert rows["NOT-THE-CENTRES"] == ["NOT-THE-CENTRES", "M1", psn, "9.00", "0.00", "0.00", "0", "institution_only"]
    assert answer["output"]["one_sided"] == 2

    # Neither a file nor a detail list: refused naming file_qury_no; the inline list stays (an extension).
    neither, _ = served_centre.call("3202", {"data": period}, sign_no=sign_no)
    assert neither["infcode"] == -1 and "file_qury_no" in neither["err_msg"], neither
    inline, _ = served_centre.call("3202", {"data": period, "detail": [{"setl_id": info["setl_id"]}]}, sign_no=sign_no)
    assert inline["output"]["one_sided"] == 1
    # A file that is not the format: refused naming the file and the line.
    broken = upload(served_centre, sign_no, zipped("d.txt", "only\tthree\tfields\n"))
    refused, _ = served_centre.call(
        "3202", {"data": {**period, "file_qury_no": broken["output"]["file_qury_no"]}}, sign_no=sign_no
    )
    assert (
        refused["infcode"] == -1 and "input.data.file_qury_no" in refused["err_msg"] and "line 1" in refused["err_msg"]
    )


@pytest.mark.parametrize("infno", ["1301", "1302", "1305", "1306", "1318", "1319"])
def test_a_catalogue_download_by_version_names_a_file_every_institution_reads(served_centre, infno):
    sign_no = served_centre.sign_in()
    everything, _ = served_centre.call(infno, {"data": {"ver": ""}}, sign_no=sign_no)
    assert everything["infcode"] == 0, everything
    out = everything["output"]
    catalogue = POLICY.region("130100").catalogues[-1]
    assert out["ver"] == catalogue.version
    hospital = served_centre.sign_in(HOSPITAL)  # the centre's published files: every institution reads them
    status, kind, body = download(served_centre, hospital, out["file_qury_no"], HOSPITAL)
    assert (status, kind) == (200, "application/octet-stream")
    lines = unzipped(body).splitlines()
    assert len(lines) == out["data_cnt"]
    assert all(line.split("\t")[-1] == catalogue.version for line in lines)
    if infno == "1301":
        assert lines and all(line[0] in "XZ" and len(line.split("\t")) == 15 for line in lines)
        item = next(i for i in catalogue.items if i.med_list_codg[0] in "XZ")
        fields = dict(zip(("codg", "name", "lv", "prop", "cap", "lmt", "type"), lines[0].split("\t")[:7], strict=True))
        assert (fields["codg"], fields["lv"], fields["type"]) == (
            item.med_list_codg,
            item.chrgitm_lv,
            item.med_chrgitm_type,
        )
    if infno == "1318":
        capped = {i.med_list_codg for i in catalogue.items if i.pric_uplmt_amt is not None}
        assert {line.split("\t")[0] for line in lines} == capped
    current, _ = served_centre.call(infno, {"data": {"ver": out["ver"]}}, sign_no=sign_no)
    assert current["output"]["data_cnt"] == 0 and current["output"]["ver"] == out["ver"]
    unknown, _ = served_centre.call(infno, {"data": {"ver": "NO-SUCH"}}, sign_no=sign_no)
    assert unknown["infcode"] == -1 and "input.data.ver" in unknown["err_msg"]


def test_1901_pages_the_code_tables(served_centre):
    sign_no = served_centre.sign_in()
    one, _ = served_centre.call("1901", {"data": {"type": "med_type"}}, sign_no=sign_no)
    assert [row["value"] for row in one["output"]["list"]] == ["11", "13", "14", "21", "41"]
    page, _ = served_centre.call("1901", {"data": {"page_num": 2, "page_size": 3}}, sign_no=sign_no)
    assert len(page["output"]["list"]) == 3 and page["output"]["total"] > 6


# -- the bounds, in process (a 10 MB body is over the HTTP edge's own limit) ----------------------------


class FakeClock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def time(self) -> float:  # ok-float: seconds
        return self.at.timestamp()

    def monotonic(self) -> float:  # ok-float: seconds
        return self.at.timestamp()

    def sleep(self, seconds: float) -> None:  # ok-float: seconds
        self.at += dt.timedelta(seconds=seconds)


def in_process(journal, clock: FakeClock) -> tuple[Centre, str]:
    population = Population.generate(POLICY, 300, seed=0)
    centre = Centre(Settler(POLICY, population, engine="core"), journal, default_institutions(POLICY), clock=clock)
    return centre, sign_in(centre)


def sign_in(centre: Centre) -> str:
    sign = centre.handle(envelope("9001", {"signIn": {"opter_no": "1"}}, ""))
    return sign["output"]["signinoutb"]["sign_no"]


def handle(centre: Centre, sign_no: str, infno: str, input_: dict) -> dict:
    return centre.handle(envelope(infno, input_, sign_no))


def up(centre: Centre, sign_no: str, content: bytes) -> dict:
    return handle(centre, sign_no, "9101", {"fsUploadIn": {"in": base64.b64encode(content).decode(), "filename": "f"}})


def stored(journal) -> int:
    with journal.files._transaction("") as execute:
        return execute("SELECT count(*) FROM files", ())[0][0]


def test_past_a_bound_is_refused_naming_it_and_stores_nothing(tmp_path, monkeypatch):
    clock = FakeClock(dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI))
    journal = SQLiteJournal(tmp_path / "centre.db")
    centre, sign_no = in_process(journal, clock)
    try:
        big = up(centre, sign_no, b"\0" * (ledger_files.MAX_FILE_BYTES + 1))
        assert big["infcode"] == -1 and "input.fsUploadIn.in" in big["err_msg"] and "10,485,760" in big["err_msg"]
        assert stored(journal) == 0

        monkeypatch.setattr(ledger_files, "MAX_FILES_PER_DAY", 2)
        resend = envelope("9101", {"fsUploadIn": {"in": base64.b64encode(b"1").decode(), "filename": "f"}}, sign_no)
        first = centre.handle(resend)
        assert centre.handle(resend)["output"] == first["output"]  # a resend (lost answer): the same file, once
        assert up(centre, sign_no, b"2")["infcode"] == 0
        third = up(centre, sign_no, b"3")
        assert third["infcode"] == -1 and "fixmedins_code" in third["err_msg"] and "files a day" in third["err_msg"]
        assert stored(journal) == 2
        clock.at += dt.timedelta(days=1)  # a new day on the centre's clock (and a new sign-in)
        sign_no = sign_in(centre)
        assert up(centre, sign_no, b"3")["infcode"] == 0

        number = first["output"]["file_qury_no"]
        clock.at += dt.timedelta(days=30)  # 31 days after the first upload: gone
        sign_no = sign_in(centre)
        kept = handle(centre, sign_no, "9102", {"fsDownloadIn": {"file_qury_no": number}})
        assert kept["infcode"] == -1 and "30 days" in kept["err_msg"]
    finally:
        journal.close()


def test_files_are_in_the_postgresql_database_every_process_reads(postgres_server):
    url = postgres_server.new_database()
    clock = FakeClock(dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI))
    journal = PostgresJournal(url)
    centre, sign_no = in_process(journal, clock)
    try:
        answer = up(centre, sign_no, b"detail bytes")
        assert answer["infcode"] == 0, answer
        number = answer["output"]["file_qury_no"]
        # Another process on the same database (its own connection) finds it; only for its owner.
        other = PostgresJournal(url)
        try:
            found = other.files.get(number, (PHARMACY, ""), clock.now())
            assert found is not None and found.content == b"detail bytes"
            assert other.files.get(number, (HOSPITAL, ""), clock.now()) is None
        finally:
            other.close()
    finally:
        journal.close()


def test_a_file_of_several_megabytes_goes_up_over_http_while_other_long_bodies_stay_refused(tmp_path):
    """The edge takes up to a 10 MB file's base64 for a 9101 only; any other body over 1 MiB is refused for its
    length, as before files came, and nothing is stored."""
    centre = ServedCentre(tmp_path / "centre").start()
    try:
        sign_no = centre.sign_in()
        content = bytes(range(256)) * (3 * 4096)  # 3 MiB, 4 MiB of base64: over the 1 MiB of other requests
        answer = upload(centre, sign_no, content, "big.bin")
        assert answer["infcode"] == 0, answer
        status, kind, body = download(centre, sign_no, answer["output"]["file_qury_no"])
        assert (status, kind, body) == (200, "application/octet-stream", content)

        padded = envelope("1101", {"data": {"psn_no": first_person(), "pad": "x" * (2 * 1024 * 1024)}}, sign_no)
        status, kind, body = raw_call(centre, padded)
        refused = json.loads(body)
        assert (status, refused["infcode"]) == (200, -1) and "over 1048576 bytes" in refused["err_msg"], refused
        assert "only a 9101 file upload may be longer" in refused["err_msg"]
    finally:
        centre.stop()
