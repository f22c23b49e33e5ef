"""Inputs of the file transactions (docs/files.md): 9101/9102, the file-based 3202, the catalogue downloads
1301-1319 and the dictionaries (1901). Registered in messages.INPUTS with the other transactions' inputs.

This module imports nothing of messages.py (messages.py imports it), so its few shared shapes are its own;
its bounded numbers are numbers.py's, as messages.py's are.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .numbers import PageNumber, PageSize, StatementCount, StatementTotal


class FsUploadIn(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    content: str = Field(alias="in")  # the file's bytes in base64 ("in" on the wire)
    filename: str = Field(min_length=1, max_length=200)
    fixmedins_code: str = ""


class FileUpload(BaseModel):
    """9101 input: one file, base64 in ``in``; answers its ``file_qury_no``."""

    fsUploadIn: FsUploadIn


class FsDownloadIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    file_qury_no: str = Field(min_length=1, max_length=64)
    filename: str = ""  # the stored name, or "plc" for the centre's generated files; not checked
    fixmedins_code: str = ""


class FileDownload(BaseModel):
    """9102 input: a file by its ``file_qury_no``; answers the file's bytes."""

    fsDownloadIn: FsDownloadIn


class DetailData(BaseModel):
    model_config = ConfigDict(extra="allow")
    stmt_begndate: dt.date
    stmt_enddate: dt.date
    file_qury_no: str = ""  # the detail uploaded with 9101 (the platform's 3202)
    setl_optins: str = Field(default="", pattern=r"^(\d{6})?$")
    medfee_sumamt: StatementTotal | None = None
    fund_pay_sumamt: StatementTotal | None = None
    cash_payamt: StatementTotal | None = None
    acct_pay: StatementTotal | None = None
    fixmedins_setl_cnt: StatementCount | None = None


class InlineDetailLine(BaseModel):
    model_config = ConfigDict(extra="allow")
    setl_id: str = Field(min_length=1)


class StatementDetailByFile(BaseModel):
    """3202 input: the period, its totals and the detail as a 9101 file (``data.file_qury_no``), or, medsettle's
    extension, the detail inline (``detail``: one {setl_id} per settlement or mirror)."""

    data: DetailData
    detail: list[InlineDetailLine] | None = Field(default=None, max_length=100_000)


class CatalogueVersionData(BaseModel):
    model_config = ConfigDict(extra="allow")
    ver: str = ""  # the version the caller holds; "" (or "0") for every row
    admdvs: str = Field(default="", pattern=r"^(\d{6})?$")  # medsettle: the region; default the institution's
    date: dt.date | None = None  # medsettle: the day whose catalogue is wanted; default today


class CatalogueDownload(BaseModel):
    """1301, 1302, 1305, 1306, 1318, 1319 input: the catalogue version the caller holds."""

    data: CatalogueVersionData = CatalogueVersionData()


class DictionaryData(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    type: str = ""  # one code table (gend, insutype, ...); "" for every one
    parent_value: str = Field(default="", alias="parentValue")
    admdvs: str = ""
    date: Any = None
    vali_flag: str | int = "1"
    page_num: PageNumber = 1
    page_size: PageSize = 1000


class Dictionaries(BaseModel):
    """1901 input: the code tables, paged."""

    data: DictionaryData = DictionaryData()


FILE_INPUTS: dict[str, type[BaseModel]] = {
    "9101": FileUpload,
    "9102": FileDownload,
    "3202": StatementDetailByFile,
    "1301": CatalogueDownload,
    "1302": CatalogueDownload,
    "1305": CatalogueDownload,
    "1306": CatalogueDownload,
    "1318": CatalogueDownload,
    "1319": CatalogueDownload,
    "1901": Dictionaries,
}
