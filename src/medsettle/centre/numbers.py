"""The bounded numbers of the request models (messages.py, file_messages.py): every number a request may send
has a bound the model checks, naming the field (docs/settlement.md 'Units and limits').

A count is a JSON integer (or its text), never true or false, which pydantic's lax int would take as 1 or 0.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from ..bounds import MAX_PAGE, MAX_STATEMENT_COUNT, MAX_STATEMENT_FEN
from ..money import FEN_PER_YUAN


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer, not true or false")
    return value


_STATEMENT_YUAN = Decimal(MAX_STATEMENT_FEN) / FEN_PER_YUAN

StatementTotal = Annotated[Decimal, Field(ge=-_STATEMENT_YUAN, le=_STATEMENT_YUAN, decimal_places=2)]
# A statement counts a cancel's mirror -1, so a day of cancels alone counts below 0
# (docs/messages.md 'Reconciliation (3201, 3202)').
StatementCount = Annotated[int, BeforeValidator(_not_bool), Field(ge=-MAX_STATEMENT_COUNT, le=MAX_STATEMENT_COUNT)]
PageNumber = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=MAX_PAGE)]
PageSize = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=5000)]

__all__ = ["PageNumber", "PageSize", "StatementCount", "StatementTotal"]
