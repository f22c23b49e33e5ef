"""Settlement engines: the Cython core and its pure-Python reference twin, behind one facade."""

from .backends import core_module, core_problem, resolve_engine_name
from .bills import Bill, BillBatch, FeeLine, encode_bills, parse_bill
from .persons import Population
from .results import Settlement
from .settler import BatchResult, Settler
from .state import PersonState

__all__ = [
    "BatchResult",
    "Bill",
    "BillBatch",
    "FeeLine",
    "PersonState",
    "Population",
    "Settlement",
    "Settler",
    "core_module",
    "core_problem",
    "encode_bills",
    "parse_bill",
    "resolve_engine_name",
]
