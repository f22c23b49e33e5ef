"""Type stubs for the Cython core (ext/_core.pyx); see that file for what each call does."""

from collections.abc import Sequence

import numpy as np

COLUMN_NAMES: tuple[str, ...]

def layout_sizes() -> dict[str, int]: ...

class CorePolicy:
    def __init__(self, compiled: object) -> None: ...

def run(
    pol: CorePolicy,
    attrs_bytes: np.ndarray,
    state_bytes: np.ndarray,
    person: np.ndarray,
    day: np.ndarray,
    year: np.ndarray,
    month: np.ndarray,
    med_type: np.ndarray,
    tier: np.ndarray,
    treat_region: np.ndarray,
    acct_flag: np.ndarray,
    adm: np.ndarray,
    saf_cash: np.ndarray,
    line_start: np.ndarray,
    item: np.ndarray,
    pric: np.ndarray,
    cnt: np.ndarray,
    appr: np.ndarray,
    out: np.ndarray,
    line_out: np.ndarray | None,
    presettle: bool = False,
) -> int: ...

CANCEL_ROLES: tuple[int, int, int]
BOUNDS: dict[str, int]  # the bounds it was built with (medsettle.engine.bounds.COMPILED_BOUNDS)

def cancel(
    state_bytes: np.ndarray, person: int, original: np.ndarray, role: int, restore: tuple[int, int, int, int]
) -> tuple[int, int]: ...
def gc_untrack(obj: object) -> None: ...
def bare_debit(balance: np.ndarray, person: np.ndarray, amount: np.ndarray, stride: int = 1) -> None: ...

class Session:
    out: np.ndarray
    lines: np.ndarray
    item_in: np.ndarray
    pric_in: np.ndarray
    cnt_in: np.ndarray
    appr_in: np.ndarray
    def __init__(self, pol: CorePolicy, attrs: np.ndarray, state: np.ndarray, n_regions: int) -> None: ...
    def settle(
        self,
        person: int,
        day: int,
        med_type: int,
        tier: int,
        treat_region: int,
        acct_flag: int,
        adm: int,
        saf_cash: int,
        items: Sequence[int],
        prices: Sequence[int],
        cnts: Sequence[int],
        apprs: Sequence[int],
        presettle: bool = False,
    ) -> int: ...
    def settle_loaded(
        self,
        person: int,
        day: int,
        med_type: int,
        tier: int,
        treat_region: int,
        acct_flag: int,
        adm: int,
        saf_cash: int,
        n: int,
        presettle: bool = False,
    ) -> int: ...
    def person_codes(self, person: int) -> tuple[int, int]: ...
