"""What a store-and-forward counter caches for provisional settlement (docs/failures.md 'Store-and-forward'):
the pooled-fund rule set in force and the catalogue in force, kept in the journal's meta (``rules``,
``catalogue``) and refreshed at every sign-in.

- The catalogue comes as the platform's catalogue downloads (docs/files.md): 1301, 1302, 1305 and 1306 (the
  items, by kind), 1318 (price caps) and 1319 (self-pay-first ratios). Each is sent with the version the
  counter holds (``ver``; "" for none) and answers the version in force and a file of the rows added,
  changed or withdrawn since, fetched with 9102 (its answer is the file's bytes, not JSON). The counter
  applies those rows to the items it holds; a download with no rows (``data_cnt`` 0) fetches no file, so a
  counter that holds the version in force sends six small requests and downloads nothing.
- The rules come as 9901, medsettle's own extension (the platform has no download of a region's pooled-fund
  rules): sent with the version held, it answers ``unchanged`` or the rule set.

The cached catalogue has the shape 1312 answers (``ver``, ``effective_from``, ``items`` as the policy's
item fields, ``total``), which :func:`~.provisional.provisional_split` reads. A centre that does not offer
the downloads (an older medsettle, which refuses naming ``infno``), or a transport that cannot fetch a file
(a centre in the same process, whose 9102 answers no bytes), is asked with 1312 as before.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Protocol, runtime_checkable

from .client import CentreUnreachable
from .common import CounterError, Refused
from .messaging import Messenger
from .store import CounterStore

ITEM_DOWNLOADS = ("1301", "1302", "1305", "1306")  # medicines, herbal pieces, service items, consumables
PRICE_CAPS, RATIOS = "1318", "1319"
DOWNLOADS = (*ITEM_DOWNLOADS, PRICE_CAPS, RATIOS)  # applied in this order: items first, then caps and ratios
FIELDS = {**dict.fromkeys(ITEM_DOWNLOADS, 15), PRICE_CAPS: 6, RATIOS: 7}  # a line's fields (docs/files.md)
BOOLS = ("bas_medn_flag", "hi_nego_drug_flag", "chld_medc_flag", "list_sp_item_flag", "drt_reim_flag")
FLAGS = ("lmt_used_flag", "med_chrgitm_type", *BOOLS)  # an item line's fields 6-12
MAX_TEXT = 64 * 1024 * 1024  # the most text a catalogue file may unzip to (a broken or hostile file)
ATTEMPTS = 2  # the version in force changed between two downloads (midnight): the whole set once more


@runtime_checkable
class FileTransport(Protocol):
    """A transport that can fetch a file: the answer's bytes as they came (CentreClient.post_raw)."""

    def post_raw(self, body: bytes) -> bytes: ...


class CacheError(CounterError):
    """The catalogue downloads could not be applied (a malformed file, versions that disagree): the cache
    the counter held is kept and the sign-in says why."""

    code = "CACHE_ERROR"


class RulesCache:
    """The counter's cache of the rules and catalogue in force, refreshed incrementally."""

    def __init__(self, journal: CounterStore, messenger: Messenger) -> None:
        self._journal, self._messenger = journal, messenger

    def refresh(self) -> None:
        """Download what changed since the versions held, and keep both (one transaction)."""
        rules = self._rules(self._held("rules"))
        catalogue = self._catalogue(self._held_catalogue())
        with self._journal.transaction() as db:
            self._journal.set_meta(db, "rules", json.dumps(rules, ensure_ascii=False))
            self._journal.set_meta(db, "catalogue", json.dumps(catalogue, ensure_ascii=False))

    # -- the rules (9901) --------------------------------------------------------------------------

    def _rules(self, held: dict[str, Any] | None) -> dict[str, Any]:
        data = {"ver": held["ver"]} if held and held.get("ver") else {}
        answer = self._messenger.query("9901", {"data": data})
        return held if held is not None and answer.get("unchanged") else answer

    # -- the catalogue -------------------------------------------------------------------------------

    def _catalogue(self, held: dict[str, Any] | None) -> dict[str, Any]:
        transport = self._messenger.transport
        if not isinstance(transport, FileTransport):
            return self._by_query(held)
        try:
            return self._by_files(held, transport)
        except Refused as refused:
            if "field infno" not in refused.err_msg:
                raise
            return self._by_query(held)  # a centre without the platform's downloads: 1312, as before

    def _by_files(self, held: dict[str, Any] | None, transport: FileTransport) -> dict[str, Any]:
        try:
            return self._changes_since(held, transport)
        except Refused as refused:
            if held is None or "field input.data.ver" not in refused.err_msg:
                raise
        return self._changes_since(None, transport)  # the centre no longer knows the version held: all of it

    def _changes_since(self, held: dict[str, Any] | None, transport: FileTransport) -> dict[str, Any]:
        """The six downloads from the version ``held``, their files fetched and applied to it."""
        for _ in range(ATTEMPTS):
            answers = {code: self._download(code, held) for code in DOWNLOADS}
            versions = {answer["ver"] for answer in answers.values()}
            if len(versions) == 1:
                break
        else:
            raise CacheError(f"the catalogue downloads named different versions {sorted(versions)}: sign in again")
        (ver,) = versions
        if held is not None and ver == held["ver"]:
            return held  # nothing changed: no file was fetched
        lines = {code: self._file_lines(code, answer, transport) for code, answer in answers.items()}
        return apply_changes(held, ver, lines)

    def _download(self, code: str, held: dict[str, Any] | None) -> dict[str, Any]:
        return self._messenger.query(code, {"data": {"ver": held["ver"] if held else ""}})

    def _file_lines(self, code: str, answer: dict[str, Any], transport: FileTransport) -> list[list[str]]:
        """The lines of download ``code``'s file, each split into its fields (none when it has no rows)."""
        if not answer.get("data_cnt"):
            return []
        text = self._fetch(answer["file_qury_no"], answer["filename"], transport)
        lines = [line.split("\t") for line in text.splitlines() if line]
        for number, fields in enumerate(lines, 1):
            if len(fields) != FIELDS[code]:
                raise CacheError(
                    f"the catalogue file {answer['filename']} ({code}) line {number} has {len(fields)} fields, "
                    f"not {FIELDS[code]}"
                )
        return lines

    def _fetch(self, file_qury_no: str, filename: str, transport: FileTransport) -> str:
        """9102: the file's text. The message is written abandoned: a download changes nothing, and a restart
        must not resend it (its answer is a file, not JSON); the next sign-in downloads again."""
        fs_download = {"file_qury_no": file_qury_no, "filename": filename, "fixmedins_code": self._messenger.code}
        with self._journal.transaction() as db:
            msgid = self._messenger.new_message(db, "9102", {"fsDownloadIn": fs_download})
            self._journal.abandon_message(db, msgid)
        raw = transport.post_raw(self._journal.require_message(msgid)["request"])
        if not raw.startswith(b"PK"):  # not a zip: the JSON envelope of a refusal
            answer = _envelope(raw)
            self._messenger.record(msgid, answer)
            raise Refused(str(answer.get("err_msg") or ""))
        self._messenger.record(msgid, {"infcode": 0, "output": {**fs_download, "size": len(raw)}})
        return _unzip_text(raw, filename)

    def _by_query(self, held: dict[str, Any] | None) -> dict[str, Any]:
        """1312, one page of 5000: the old way, for a centre or a transport without files."""
        data: dict[str, Any] = {"page_size": 5000, **({"ver": held["ver"]} if held else {})}
        answer = self._messenger.query("1312", {"data": data})
        return held if held is not None and answer.get("unchanged") else answer

    # -- what is held ------------------------------------------------------------------------------

    def _held(self, name: str) -> dict[str, Any] | None:
        cached = self._journal.get_meta(name)
        return json.loads(cached) if cached else None

    def _held_catalogue(self) -> dict[str, Any] | None:
        """The catalogue held, if it is whole (a 1312 page that was not all of it is not a base for changes)."""
        held = self._held("catalogue")
        if not held or not held.get("ver") or not held.get("items"):
            return None
        return held if held.get("total", len(held["items"])) == len(held["items"]) else None


def apply_changes(held: dict[str, Any] | None, ver: str, lines: dict[str, list[list[str]]]) -> dict[str, Any]:
    """The catalogue ``ver``: ``held`` (None: nothing) with the downloads' lines applied. An item line (1301
    ... 1306) adds or replaces its item whole, ratios by person type cleared (1319 lists every ratio of an
    item that changed), or withdraws it (vali_flag 0); 1318 sets a cap and 1319 a ratio of an item held."""
    items = {item["med_list_codg"]: dict(item) for item in (held["items"] if held else [])}
    effective_from = held["effective_from"] if held else ""
    for code in ITEM_DOWNLOADS:
        for codg, name, lv, prop, cap, *flags, begndate, vali_flag, _ver in lines.get(code, []):
            effective_from = begndate
            if vali_flag == "0":
                items.pop(codg, None)
                continue
            items[codg] = {
                "med_list_codg": codg,
                "name": name,
                "chrgitm_lv": lv,
                "selfpay_prop": prop,
                "selfpay_prop_by_psn_type": {},
                "pric_uplmt_amt": cap or None,
                **_flags(flags),
            }
    for codg, _name, cap, _begndate, vali_flag, _ver in lines.get(PRICE_CAPS, []):
        if vali_flag == "1" and codg in items:
            items[codg]["pric_uplmt_amt"] = cap or None
    for codg, _name, psn_type, prop, _begndate, vali_flag, _ver in lines.get(RATIOS, []):
        if vali_flag == "1" and codg in items:
            if psn_type:
                items[codg]["selfpay_prop_by_psn_type"] = {**items[codg]["selfpay_prop_by_psn_type"], psn_type: prop}
            else:
                items[codg]["selfpay_prop"] = prop
    if not items or not effective_from:
        raise CacheError(f"the catalogue downloads of version {ver} hold no item")
    return {"ver": ver, "effective_from": effective_from, "items": list(items.values()), "total": len(items)}


def _flags(values: list[str]) -> dict[str, Any]:
    """An item line's fields 6-12: the charge item category as it is, the flags ``0``/``1`` as booleans."""
    return {
        flag: value if flag == "med_chrgitm_type" else value == "1" for flag, value in zip(FLAGS, values, strict=True)
    }


def _envelope(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        raise CentreUnreachable(f"the centre answered a 9102 with neither a file nor JSON: {raw[:80]!r}") from None
    if not isinstance(answer, dict):
        raise CentreUnreachable(f"the centre answered a 9102 with JSON that is not an envelope: {raw[:80]!r}")
    return answer


def _unzip_text(raw: bytes, filename: str) -> str:
    """The zipped file's first member as UTF-8 text (docs/files.md: one text file in a zip)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if not members or members[0].file_size > MAX_TEXT:
                raise CacheError(f"the catalogue file {filename} holds no text of at most {MAX_TEXT:,} bytes")
            return archive.read(members[0]).decode("utf-8-sig")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as error:
        raise CacheError(f"the catalogue file {filename} is not a zipped UTF-8 text: {error}") from None
