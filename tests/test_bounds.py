"""docs/settlement.md's bounds are defined once (engine/bounds.py; ext/bounds.h for C) and every copy agrees."""

import pytest

from medsettle.engine import backends, bills, bounds, state
from medsettle.policy import models


@pytest.mark.parametrize("which", ["core", "plain"])
def test_the_compiled_modules_were_built_with_the_python_bounds(which):
    module = backends.core_module() if which == "core" else backends.plain_module()
    assert module is not None, backends.core_problem()
    assert module.BOUNDS == bounds.COMPILED_BOUNDS


def test_the_python_names_are_the_bounds_module():
    for name in ("MAX_PRIC_UNITS", "MAX_CNT_UNITS", "MAX_LINES", "MAX_MEDFEE", "LINE_DIVISOR", "MIN_YEAR", "MAX_YEAR"):
        assert getattr(bills, name) == getattr(bounds, name), name
    for name in ("MIN_YEAR", "MAX_YEAR", "MAX_ADMISSIONS_PER_YEAR", "MAX_SETTLEMENTS_PER_ADMISSION"):
        assert getattr(state, name) == getattr(bounds, name), name
    assert models.LIMIT_MAX_FEN == bounds.LIMIT_MAX_FEN
    assert models.PRICE_MAX_UNITS == bounds.MAX_PRIC_UNITS


def test_the_bounds_are_docs_settlement_md():
    assert bounds.MAX_PRIC_UNITS == 10**6 * 10**4 and bounds.MAX_CNT_UNITS == 10**4 * 10**4
    assert bounds.MAX_LINES == 1000 and bounds.MAX_MEDFEE == 10**11 and bounds.LIMIT_MAX_FEN == 2**31 - 1
    # the state's records hold them: adm_count is one byte, adm_nsetl two
    assert bounds.MAX_ADMISSIONS_PER_YEAR == 2**8 - 1 and bounds.MAX_SETTLEMENTS_PER_ADMISSION == 2**16 - 1
    assert state.STATE_DTYPE["adm_count"].itemsize == 1 and state.STATE_DTYPE["adm_nsetl"].itemsize == 2


def test_a_credit_past_the_balance_bound_is_refused_and_changes_nothing(engine):
    from medsettle.engine import Population, Settler
    from medsettle.errors import InvalidInput
    from medsettle.policy import load_default_policy

    policy = load_default_policy()
    settler = Settler(policy, Population.generate(policy, 3), engine=engine)
    psn_no = settler.population.psn_nos[0]
    before = settler.person_state(psn_no).balance
    top = bounds.MAX_BALANCE_FEN - before
    assert settler.credit(psn_no, top) == bounds.MAX_BALANCE_FEN  # up to the bound is fine
    with pytest.raises(InvalidInput, match="bound") as refused:
        settler.credit(psn_no, 1)
    assert refused.value.field == "amount"
    assert settler.person_state(psn_no).balance == bounds.MAX_BALANCE_FEN
