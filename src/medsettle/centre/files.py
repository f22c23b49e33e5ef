"""9101 file upload and 9102 file download (docs/files.md), and the answer files other flows write.

Files live in the journal's database (medsettle.ledger.files), not in the centre's memory: a restart keeps
them and every centre process on one PostgreSQL reads what another stored. An institution reads its own
files and the centre's published ones (catalogue downloads); another institution's ``file_qury_no`` is
refused exactly as an unknown one is, so no answer tells whether it exists.

A file's number is derived from what it is (owner, msgid or name, content): a resent 9101 (a lost answer)
finds the file it stored and answers the same ``file_qury_no`` without counting it twice, and the centre
writing the same answer file again (the same 3202, a catalogue download asked twice) stores it once.

9102 answers the file's bytes, not JSON, as the platform does: its handler returns a :class:`FileAnswer`
(a dict of the file's particulars, so in-process callers of ``Centre.handle`` get those) whose bytes the
HTTP edge writes as ``application/octet-stream``. A refusal is the JSON envelope as for every transaction.

The store is read and written synchronously while the request is answered (on the HTTP server's event
loop): a file transaction waits for its database, unlike the journaled transactions' group commit. Files
are rare next to settlements, and a 10 MB file is written in tens of milliseconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import zipfile
from typing import Any

from ..errors import InvalidInput
from ..ledger.files import MAX_FILE_BYTES, FileStore, StoredFile
from .core import Ledger
from .file_messages import FileDownload, FileUpload
from .institutions import Institution
from .messages import Envelope

CENTRE = ""  # the owner of what the centre publishes to every institution
_WHITESPACE = re.compile(rb"\s+")
MAX_ZIPPED_TEXT = 64 * 1024 * 1024  # a zipped text file's text at most (a zip bomb is refused)


class FileAnswer(dict):
    """9102's answer: the file's particulars (file_qury_no, filename, size) and, in ``content``, its bytes."""

    def __init__(self, stored: StoredFile) -> None:
        super().__init__(file_qury_no=stored.file_qury_no, filename=stored.filename, size=len(stored.content))
        self.content = stored.content


def file_number(*parts: str | bytes) -> str:
    """``fsi/`` and 26 hex digits of SHA-256 over the parts (30 characters, the platform's width)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return "fsi/" + digest.hexdigest()[:26]


def fileinfo(stored: StoredFile) -> dict[str, Any]:
    """What an answer naming a file carries: the platform's file_qury_no, filename and dld_endtime."""
    return {
        "file_qury_no": stored.file_qury_no,
        "filename": stored.filename,
        "dld_endtime": stored.expires.strftime("%Y-%m-%d %H:%M:%S"),
    }


def zip_text(name: str, text: str) -> bytes:
    """One UTF-8 text file ``name`` in a zip (deflated), as the platform's detail and catalogue files are."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))  # fixed: the same rows, the same bytes
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, text.encode())
    return out.getvalue()


def unzip_text(content: bytes, field: str) -> str:
    """The text of a zipped UTF-8 text file (its first member); InvalidInput naming ``field`` otherwise."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if not members:
                raise InvalidInput("the zip holds no file", field=field)
            if members[0].file_size > MAX_ZIPPED_TEXT:
                raise InvalidInput(f"the zipped text is over {MAX_ZIPPED_TEXT:,} bytes", field=field)
            raw = archive.read(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise InvalidInput(f"the file is not a zip ({exc})", field=field) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the zipped text is not UTF-8 ({exc})", field=field) from None


class Files:
    """The store's transactions (9101, 9102) and the way other flows publish their answer files."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @property
    def store(self) -> FileStore:
        return self._ledger.journal.files

    def handlers(self) -> dict:
        return {"9101": self._upload, "9102": self._download}

    # -- what other flows call ----------------------------------------------------------------

    def publish(self, owner: str, filename: str, content: bytes) -> StoredFile:
        """Store an answer file of the centre's for ``owner`` (CENTRE: every institution); not counted."""
        number = file_number("answer", owner, filename, content)
        return self.store.put(number, owner, filename, content, self._ledger.clock.now(), counted=False)

    def read(self, file_qury_no: str, institution: Institution, field: str) -> StoredFile:
        """A file the institution may read (its own or the centre's), else InvalidInput naming ``field``."""
        stored = self.store.get(file_qury_no, (institution.fixmedins_code, CENTRE), self._ledger.clock.now())
        if stored is None:
            raise InvalidInput(
                f"no file {file_qury_no} of {institution.fixmedins_code} is kept (a file is kept 30 days)", field=field
            )
        return stored

    # -- the transactions ---------------------------------------------------------------------

    def _upload(self, env: Envelope, institution: Institution, payload: FileUpload) -> dict:
        upload = payload.fsUploadIn
        text = upload.content.encode("ascii", "replace")
        if len(text) > (MAX_FILE_BYTES + 2) // 3 * 4 + 4096:  # over the bound already, before decoding
            raise InvalidInput(f"a file is at most {MAX_FILE_BYTES:,} bytes (decoded)", field="input.fsUploadIn.in")
        try:
            content = base64.b64decode(_WHITESPACE.sub(b"", text), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"not base64 ({exc})", field="input.fsUploadIn.in") from None
        owner = institution.fixmedins_code
        stored = self.store.put(
            file_number("upload", owner, env.msgid, upload.filename, content),
            owner,
            upload.filename,
            content,
            self._ledger.clock.now(),
            counted=True,
        )
        return fileinfo(stored)

    def _download(self, env: Envelope, institution: Institution, payload: FileDownload) -> FileAnswer:
        return FileAnswer(self.read(payload.fsDownloadIn.file_qury_no, institution, "input.fsDownloadIn.file_qury_no"))
