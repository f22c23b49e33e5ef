"""What counters cache for provisional settlement (docs/messages.md 'Rules for the counter'; docs/files.md).

The platform's catalogue downloads 1301 (western and patent medicines), 1302 (herbal pieces), 1305
(medical service items), 1306 (medical consumables), 1318 (price caps) and 1319 (self-pay-first ratios)
answer a file: the caller sends the catalogue version it holds (``ver``, "" or "0" for none) and gets the
rows added, changed or withdrawn (vali_flag 0) since, as zipped tab-separated text, published by the
centre for every institution and fetched with 9102, and the version id now in force. 1312 pages through
the catalogue of a treatment region in force on a day (the platform's catalogue query) and 1901 through the
code tables of medsettle.policy.codes, both as JSON. 9901 is medsettle's extension that answers the
pooled-fund rule set in force (the models' own JSON: amounts in yuan and ratios as fractions, exact strings,
so it loads again with medsettle.policy.policy_from_dict). Each says which version it answers, so a counter
can keep what it has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from ..errors import InvalidInput
from ..policy import codes
from ..policy.models import Catalogue, CatalogueItem, Policy, Region
from ..seams import Clock
from .core import Ledger
from .file_messages import CatalogueDownload, CatalogueVersionData, Dictionaries
from .files import CENTRE, Files, fileinfo, zip_text
from .institutions import Institution
from .messages import Download, DownloadData, Envelope

Version = TypeVar("Version")  # a catalogue or a rule set: what a region has one of in force on each day


class Downloads:
    def __init__(self, policy: Policy, clock: Clock, ledger: Ledger) -> None:
        self._policy = policy
        self._clock = clock  # "today" when the counter does not name a day
        self._files = Files(ledger)

    def handlers(self) -> dict:
        catalogue_files = {code: self._catalogue_file(code) for code in CATALOGUE_FILES}
        queries = {"1312": self._download_catalogue, "9901": self._download_rules, "1901": self._dictionaries}
        return {**queries, **catalogue_files}

    def _catalogue_file(self, code: str) -> Callable[[Envelope, Institution, CatalogueDownload], dict]:
        def download(env: Envelope, institution: Institution, payload: CatalogueDownload) -> dict:
            return self._changes_file(code, institution, payload.data)

        return download

    def _changes_file(self, code: str, institution: Institution, d: CatalogueVersionData) -> dict:
        """The file of catalogue ``code``'s rows changed after version ``d.ver`` (every row for "" or "0")."""
        region, catalogue = self._in_force(d, institution, "catalogue", Region.catalogue_on)
        held: Catalogue | None = None
        if d.ver not in ("", "0"):
            held = next((c for c in region.catalogues if c.version == d.ver), None)
            if held is None:
                raise InvalidInput(
                    f"catalogue version {d.ver!r} is not one of {region.admdvs}'s", field="input.data.ver"
                )
        rows = catalogue_rows(code, catalogue, held)
        name = f"{code}_{region.admdvs}_{held.version if held else '0'}_{catalogue.version}"
        text = "".join(row + "\n" for row in rows)
        stored = self._files.publish(CENTRE, name + ".txt.zip", zip_text(name + ".txt", text))
        return {**fileinfo(stored), "ver": catalogue.version, "data_cnt": len(rows)}

    def _dictionaries(self, env: Envelope, institution: Institution, payload: Dictionaries) -> dict:
        d = payload.data
        rows = [row for row in dictionary_rows() if not d.type or row["type"] == d.type]
        start = (d.page_num - 1) * d.page_size
        return {
            "list": rows[start : start + d.page_size],
            "total": len(rows),
            "page_num": d.page_num,
            "page_size": d.page_size,
        }

    def _download_catalogue(self, env: Envelope, institution: Institution, payload: Download) -> dict:
        d = payload.data
        region, catalogue = self._in_force(d, institution, "catalogue", Region.catalogue_on)
        if d.ver == catalogue.version:
            return {"ver": catalogue.version, "unchanged": True, "items": []}
        start = (d.page_num - 1) * d.page_size
        items = catalogue.items[start : start + d.page_size]
        return {
            "ver": catalogue.version,
            "effective_from": catalogue.effective_from.isoformat(),
            "unchanged": False,
            "total": len(catalogue.items),
            "page_num": d.page_num,
            "page_size": d.page_size,
            "items": [item.model_dump(mode="json") for item in items],
        }

    def _download_rules(self, env: Envelope, institution: Institution, payload: Download) -> dict:
        d = payload.data
        region, rules = self._in_force(d, institution, "rule set", Region.ruleset_on)
        if d.ver == rules.version:
            return {"ver": rules.version, "unchanged": True}
        return {
            "ver": rules.version,
            "unchanged": False,
            "admdvs": region.admdvs,
            "groups": [g.model_dump(mode="json") for g in region.groups],
            "ruleset": rules.model_dump(mode="json"),
        }

    def _in_force(
        self,
        d: DownloadData | CatalogueVersionData,
        institution: Institution,
        what: str,
        version_on: Callable[[Region, dt.date], Version | None],
    ) -> tuple[Region, Version]:
        """(region, its catalogue or rule set in force on the asked day: today by default); ``what`` names
        which for the error, ``version_on`` finds it (Region.catalogue_on or Region.ruleset_on)."""
        admdvs = d.admdvs or institution.admdvs
        try:
            region = self._policy.region(admdvs)
        except KeyError:
            raise InvalidInput(f"region {admdvs} is not in the policy", field="input.data.admdvs") from None
        day = d.date or self._clock.now().date()
        found = version_on(region, day)
        if found is None:
            raise InvalidInput(f"no {what} of {admdvs} is in force on {day}", field="input.data.date")
        return region, found


# What each catalogue download holds: which items, and which columns of each (docs/files.md).
CATALOGUE_FILES = ("1301", "1302", "1305", "1306", "1318", "1319")
ITEM_COLUMNS = ("med_list_codg", "name", "chrgitm_lv", "selfpay_prop", "pric_uplmt_amt", "lmt_used_flag")
ITEM_FLAGS = ("bas_medn_flag", "hi_nego_drug_flag", "chld_medc_flag", "list_sp_item_flag", "drt_reim_flag")


def _kind(item: CatalogueItem) -> str:
    """The download holding an item, by the platform's code prefixes: X/Z medicines (1301), T herbal pieces
    (1302), C consumables (1306), the rest (digits) medical service items (1305)."""
    first = item.med_list_codg[:1].upper()
    return {"X": "1301", "Z": "1301", "T": "1302", "C": "1306"}.get(first, "1305")


def _lines(code: str, item: CatalogueItem, catalogue: Catalogue, valid: bool) -> list[str]:
    """An item's lines in download ``code`` (none if that download does not hold it)."""
    j = item.model_dump(mode="json")
    tail = [catalogue.effective_from.isoformat(), "1" if valid else "0", catalogue.version]
    if code == "1318":
        return ["\t".join([item.med_list_codg, item.name, j["pric_uplmt_amt"], *tail])] if j["pric_uplmt_amt"] else []
    if code == "1319":
        ratios = [("", j["selfpay_prop"])] if item.selfpay_prop else []
        ratios += sorted(j["selfpay_prop_by_psn_type"].items())
        return ["\t".join([item.med_list_codg, item.name, psn_type, prop, *tail]) for psn_type, prop in ratios]
    if _kind(item) != code:
        return []
    values = ["" if j[c] is None else str(j[c]) for c in ITEM_COLUMNS[:5]]
    flags = ["1" if j[c] else "0" for c in ("lmt_used_flag", *ITEM_FLAGS)]
    return ["\t".join([*values, flags[0], item.med_chrgitm_type, *flags[1:], *tail])]


def catalogue_rows(code: str, catalogue: Catalogue, held: Catalogue | None) -> list[str]:
    """Download ``code``'s lines of ``catalogue`` added or changed since ``held`` (every line without one),
    then those of items ``held`` had and ``catalogue`` has not, withdrawn (vali_flag 0)."""
    before = {} if held is None else {i.med_list_codg: i for i in held.items}
    rows = []
    for item in catalogue.items:
        old = before.get(item.med_list_codg)
        if old is None or old != item:
            rows += _lines(code, item, catalogue, True)
    now = {i.med_list_codg for i in catalogue.items}
    for codg, old in before.items():
        if codg not in now:
            rows += _lines(code, old, catalogue, False)
    return rows


# 1901's code tables: the values are medsettle.policy.codes' (and the wire's fixed ones), the labels the platform's.
_LABELS = {
    "insutype": {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"},
    "psn_type": {"11": "在职", "12": "退休", "1501": "城乡居民成年人", "1502": "城乡居民未成年人及学生"},
    "med_type": {"11": "普通门诊", "13": "急诊", "14": "门诊慢特病", "21": "普通住院", "41": "定点药店购药"},
    "chrgitm_lv": {"01": "甲类", "02": "乙类", "03": "丙类"},
    "clr_type": {"11": "门诊", "21": "住院", "41": "药店购药"},
    "mdtrt_cert_type": {"01": "医保电子凭证", "02": "居民身份证", "03": "社会保障卡"},
    "gend": {"1": "男", "2": "女"},
    "fund_pay_type": {
        codes.FUND_EMPLOYEE_POOLED: "职工基本医疗保险统筹基金",
        codes.FUND_EMPLOYEE_ACCOUNT: "职工基本医疗保险个人账户",
        codes.FUND_LARGE_AMOUNT: "职工大额医疗费用补助",
        codes.FUND_RESIDENT_BASIC: "城乡居民基本医疗保险基金",
        codes.FUND_RESIDENT_CRITICAL: "城乡居民大病医疗保险",
        codes.FUND_ASSISTANCE: "医疗救助基金",
        codes.FUND_INSTITUTION: "医院负担",
    },
}
_VALUES = {
    "insutype": codes.INSUTYPES,
    "psn_type": codes.PSN_TYPES,
    "med_type": codes.MED_TYPES,
    "chrgitm_lv": tuple(codes.CLASS_CODES),
}


def dictionary_rows() -> list[dict[str, str | int]]:
    """Every code table's rows (type, value, label, parent_value, sort, vali_flag), tables by name."""
    rows: list[dict[str, str | int]] = []
    for table in sorted(_LABELS):
        values = _VALUES.get(table, tuple(_LABELS[table]))
        for n, value in enumerate(values, 1):
            rows.append(
                {
                    "type": table,
                    "value": value,
                    "label": _LABELS[table].get(value, ""),
                    "parent_value": "",
                    "sort": n,
                    "vali_flag": "1",
                }
            )
    return rows
