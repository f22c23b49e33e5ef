"""The bills file ``medsettle settle`` reads: JSON lines from a file or standard input, read once as bytes.

Its errors name the file and the line (:class:`BillsFileError`); a line the quick route cannot take is
read exactly (:func:`read_exact`: numbers as Decimal, never through float).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Self


class BillsFileError(ValueError):
    """A bills file that cannot be settled: the message names the file, the line and what is wrong."""


class BillsFile:
    """A JSON-lines bills file (or standard input), read once, line by line, as bytes."""

    def __init__(self, path: str, stdin: IO[bytes] | None = None) -> None:
        self.path = path
        self.name = "standard input" if path == "-" else path
        self._file: IO[bytes]
        if path == "-":
            if stdin is None:
                raise TypeError("BillsFile('-') reads standard input: pass it as stdin (sys.stdin.buffer)")
            self._file = stdin
            self._close = False
            return
        try:
            self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        except FileNotFoundError:
            raise BillsFileError(
                f"{path}: no such bills file: give the path of a JSON-lines file of bills "
                "(one bill a line, as 'medsettle bills generate' writes), or - for "
                "standard input"
            ) from None
        except OSError as exc:
            raise BillsFileError(f"{path}: cannot read the bills file: {exc.strerror}") from None
        self._close = True

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line) of every line that is not blank."""
        for number, line in enumerate(self._file, start=1):
            if not line.isspace():
                yield number, line

    def where(self, line_number: int) -> str:
        return f"{self.name}: line {line_number}"

    def close(self) -> None:
        if self._close:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_exact(line: bytes, where: str) -> object:
    """The line's JSON with every number with a fraction as an exact Decimal (never through float).

    Raises BillsFileError for text that is not UTF-8 or not JSON, naming ``where`` (file and line)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BillsFileError(
            f"{where}: not UTF-8 text (byte 0x{line[exc.start]:02x} at column {exc.start + 1}): "
            "save the bills file as UTF-8"
        ) from None
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise BillsFileError(
            f"{where}: not valid JSON: {exc.msg} (column {exc.colno}): a bills file has one JSON object a line"
        ) from None


__all__ = ["BillsFile", "BillsFileError", "read_exact"]
