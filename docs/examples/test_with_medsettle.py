"""An example test module for your own suite, using medsettle's pytest plugin (docs/testing.md).

Copy it next to your tests: with medsettle installed, pytest loads the plugin by itself (or name it with
``-p medsettle.testing.plugin``). Each test gets a fresh centre process, counters on their own journals in
``tmp_path``, a virtual card reader and a fault proxy, all stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from medsettle.readers import CardRemoved
from medsettle.terminal import Counter, Identity

if TYPE_CHECKING:  # the fixtures' types, for annotations only
    from medsettle.sim.clock import VirtualClock
    from medsettle.testing.cards import VirtualCardRig
    from medsettle.testing.centre import RunningCentre
    from medsettle.testing.proxy import FaultProxy

NewCounter = Callable[..., Counter]  # what medsettle_counter is: medsettle_counter("P13010000001", ...)

PHARMACY = "P13010000001"  # the default world's online pharmacy in Shijiazhuang (130100)


def test_a_sale_by_id_number(medsettle_centre: RunningCentre, medsettle_counter: NewCounter) -> None:
    """A clerk signs in and sells to an insured employee identified by their ID number."""
    patient = medsettle_centre.person("130100", "310")  # the first employee of the default population
    counter = medsettle_counter(PHARMACY)
    counter.sign_in()
    receipt = counter.sell(Identity("02", patient.certno), medsettle_centre.bill(2))
    assert receipt.kind == "sale" and receipt.setl_id
    assert counter.reconcile(detail=True)["clean"]


def test_a_lost_answer_is_resent_and_settled_once(
    medsettle_centre: RunningCentre, medsettle_counter: NewCounter, medsettle_faults: FaultProxy
) -> None:
    """The centre settles, its answer is lost on the way back; the counter resends the same message and
    the centre answers it again without settling twice."""
    patient = medsettle_centre.person()
    counter = medsettle_counter(PHARMACY, via_proxy=True)
    counter.sign_in()
    medsettle_faults.drop("2102", what="answer", times=1)
    receipt = counter.sell(Identity("02", patient.certno), medsettle_centre.bill())
    assert receipt.kind == "sale"
    assert medsettle_faults.count("dropped answer", "2102") == 1
    day = counter.now().date().isoformat()
    assert [s["setl_id"] for s in medsettle_centre.settlements(PHARMACY, day)] == [receipt.setl_id]


def test_a_card_pulled_before_the_settlement(
    medsettle_centre: RunningCentre, medsettle_counter: NewCounter, medsettle_card: VirtualCardRig
) -> None:
    """The patient takes the card out after it was read: the sale stops and nothing is settled."""
    patient = medsettle_centre.person()
    counter = medsettle_counter(PHARMACY, reader=medsettle_card.reader)
    counter.sign_in()
    medsettle_card.insert(patient.psn_no)  # a card personalised from the centre's records
    identity = counter.read_card(pin="123456")
    medsettle_card.pull()
    with pytest.raises(CardRemoved):
        counter.sell(identity, medsettle_centre.bill())
    assert medsettle_centre.settlements(PHARMACY, counter.now().date().isoformat()) == []


def test_the_virtual_clock(medsettle_clock: VirtualClock) -> None:
    """Time moves only when the test moves it."""
    start = medsettle_clock.now()
    medsettle_clock.advance(3600)
    assert (medsettle_clock.now() - start).total_seconds() == 3600
