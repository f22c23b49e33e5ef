"""Exact parsing of amounts: every accepted spelling gives the same int, nothing goes through float."""

from decimal import Decimal

import pytest

from medsettle import money
from medsettle.errors import InvalidInput


@pytest.mark.parametrize(
    "value, fen",
    [
        ("12.50", 1250),
        ("12.5", 1250),
        ("12", 1200),
        (12, 1200),
        (Decimal("12.50"), 1250),
        (12.5, 1250),
        (" 0.07 ", 7),
        ("-3.10", -310),
        ("0.10000", 10),
        ("1e2", 10000),
        (".5", 50),
        ("+4.52", 452),
        (4.52, 452),
    ],
)
def test_to_fen(value, fen):
    assert money.to_fen(value) == fen


@pytest.mark.parametrize("value", ["12.505", "abc", "", "1.2.3", "nan", "inf", True, None, [1], 0.001])
def test_to_fen_refuses(value):
    with pytest.raises(InvalidInput):
        money.to_fen(value, "medfee_sumamt")


def test_prices_and_counts_have_four_places():
    assert money.to_price_units("0.0333") == 333 and money.to_cnt_units("1.5") == 15000
    with pytest.raises(InvalidInput, match="more than 4 decimals"):
        money.to_price_units("0.00001", "pric")


def test_rounding_is_half_up_at_every_step():
    assert money.apply_bp(452, 500) == 23  # 22.6
    assert money.apply_bp(5, 5000) == 3  # 2.5 -> 3
    assert money.apply_bp(3, 5000) == 2  # 1.5 -> 2
    assert money.round_half_up_div(-5, 2) == -3
    assert money.fen_to_decimal(137363) == Decimal("1373.63")
