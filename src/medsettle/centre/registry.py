"""Who the insured are and which cards they hold (docs/card.md 'Lifecycle').

The engines know persons only by row and static attributes; the registry adds the identity a counter
sees (name, ID number, sex, birth date, unit) and the social security cards, whose state the centre
keeps authoritatively: issued (not yet activated), active, lost, cancelled. A generated population
gets deterministic identities and one card each, so the same seed always gives the same people.
Card and person events change state only through :meth:`Registry.apply` (journaled by the centre).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from ..engine.eligibility import contribution_run
from ..engine.persons import FLAG_ACTIVE, FLAG_ASSISTANCE, Population
from ..errors import SettlementRefused
from ..policy.codes import INSUTYPES, PSN_TYPES
from ..seams import Clock

ISSUED, ACTIVE, LOST, CANCELLED = "issued", "active", "lost", "cancelled"
CARD_EVENT, PERSON_EVENT = "card_event", "person_event"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
# GB 3304 ethnicity codes (the platform's naty) with relative weights near the census's shares: 01 汉族 most,
# then 08 壮族, 03 回族, 05 维吾尔族, 11 满族, 06 苗族, 07 彝族, 15 土家族, 04 藏族, 02 蒙古族 and a few more.
# A person with no recorded ethnicity (enrolled through the admin API, which takes none) is 01.
NATY_SHARES = (
    ("01", 915),
    ("08", 13),
    ("03", 8),
    ("05", 8),
    ("11", 8),
    ("06", 7),
    ("07", 7),
    ("15", 7),
    ("04", 5),
    ("02", 4),
    ("09", 2),
    ("12", 2),
    ("13", 2),
    ("14", 1),
    ("10", 1),
)
DEFAULT_NATY = "01"


class CardRefused(SettlementRefused):
    """The card cannot be used: its code says why (CARD_LOST, CARD_CANCELLED, CARD_NOT_ACTIVATED,
    CARD_UNKNOWN). Like every refusal of a state-changing call, it is a stored answer."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(code, message)
        self.field = field


@dataclass
class Identity:
    psn_no: str
    psn_name: str
    certno: str
    gend: str  # "1" male, "2" female
    brdy: dt.date
    emp_name: str
    emp_no: str = ""
    naty: str = DEFAULT_NATY  # GB 3304 two-digit ethnicity code; "01" when none is recorded


@dataclass
class Card:
    card_no: str  # 9 characters, printed on the card (EF05 07)
    card_sn: str  # card identification code, 32 hex digits (EF05 01)
    psn_no: str
    status: str = ISSUED
    channel: str = "generated"  # on_the_spot, service_point, delegate, employer
    ready_on: str = ""  # ISO date from which the card can be collected and used ("" = at once)


def id_check_digit(first17: str) -> str:
    """The 18th character of a citizen ID number (ISO 7064 MOD 11-2)."""
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


class Registry:
    def __init__(self, population: Population, identities: dict[str, Identity], cards: list[Card]) -> None:
        self.population = population
        self.identities = identities
        self.by_certno = {i.certno: i.psn_no for i in identities.values()}
        self.cards = {c.card_no: c for c in cards}
        self.cards_of: dict[str, list[str]] = {}
        for c in cards:
            self.cards_of.setdefault(c.psn_no, []).append(c.card_no)
        self.contributions: dict[str, set[int]] = {}  # psn_no -> months paid (year*12+month-1)
        self.transfer_gaps: dict[str, set[int]] = {}  # psn_no -> months lost to a transfer between regions
        self.transfers: dict[str, dict] = {}  # certificate_no -> the transfer certificate
        # the insurance relations (docs/agency.md 'Coming back', 'Employment'), all rebuilt by replaying person events
        self.ended: dict[str, str] = {}  # psn_no -> why the relation here ended (a cancellation's reason)
        self.relations: dict[str, list[dict]] = {}  # psn_no -> the relations that ended, oldest first
        self.flexible: set[str] = set()  # flexible employees: scheme 310 with no unit, paying themselves
        self.unemployed: dict[str, dict] = {}  # psn_no -> since (month index) and the unit left
        self.scheme_accumulators: dict[tuple[str, str], dict] = {}  # (psn_no, insutype) -> that scheme's year
        self.changes: dict[str, int] = {}  # psn_no -> relation and employment events applied (their journal keys)
        # (fixmedins_code, card_no) -> when that institution last presented the card with its chip's card_sn
        # (centre/certificates.py): in memory only, as a card reader's session is; a restart forgets it
        self.card_reads: dict[tuple[str, str], dt.datetime] = {}

    @classmethod
    def generate(cls, population: Population, *, seed: int = 0, activated_share: float = 0.9) -> Registry:
        """Deterministic identities and one card per person (most activated, some only issued). Each field
        comes from the seeded generator, as the ID number, gender and birth date do; the ethnicity (naty) from
        a generator of its own seeded from ``seed`` too, so adding it left every other field as it was."""
        rng = random.Random(seed)
        # ethnicity from a stream of its own: the draws of the other fields (and so every identity generated
        # before naty existed) stay as they were for the same seed
        naty_rng = random.Random(f"naty:{seed}")
        naty_codes, naty_weights = zip(*NATY_SHARES, strict=True)
        identities: dict[str, Identity] = {}
        cards: list[Card] = []
        for i, psn_no in enumerate(population.psn_nos):
            attrs = population.attrs[i]
            psn_type, insutype = PSN_TYPES[int(attrs["psn_type"])], INSUTYPES[int(attrs["insutype"])]
            age = {
                "11": rng.randint(22, 58),
                "12": rng.randint(61, 88),
                "1501": rng.randint(18, 80),
                "1502": rng.randint(1, 17),
            }[psn_type]
            brdy = dt.date(2026 - age, rng.randint(1, 12), rng.randint(1, 28))
            gend = rng.choice("12")
            region = population.region_of(i)
            seq = f"{i % 1000:03d}"
            if (int(seq[-1]) % 2 == 1) != (gend == "1"):  # the 17th digit is odd for men
                seq = seq[:2] + str((int(seq[-1]) + 1) % 10)
            first17 = f"{region}{brdy:%Y%m%d}{seq}"
            name = rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, rng.randint(1, 2)))
            identities[psn_no] = Identity(
                psn_no,
                name,
                first17 + id_check_digit(first17),
                gend,
                brdy,
                "城乡居民虚拟单位" if insutype == "390" else f"单位{rng.randint(1, 500):03d}",
                naty=naty_rng.choices(naty_codes, naty_weights)[0],
            )
            serial = f"{i:08d}"
            cards.append(
                Card(
                    card_no=f"{region[:2]}{i:07d}",
                    card_sn=f"{region}D156000005{serial}FFFFFFFF",
                    psn_no=psn_no,
                    status=ACTIVE if rng.random() < activated_share else ISSUED,
                )
            )
        return cls(population, identities, cards)

    # -- lookups ------------------------------------------------------------------------------

    def card_for(
        self, card_no: str, card_sn: str = "", psn_no: str = "", *, field: str = "mdtrt_cert_no", clock: Clock
    ) -> Card:
        """The card with this number (and identification code, when given) that may be used now (on the
        centre's ``clock``, Asia/Shanghai: asked only for a card still being made)."""
        card = self.cards.get(card_no)
        if card is None or (card_sn and card.card_sn.upper() != card_sn.upper()):
            raise CardRefused("CARD_UNKNOWN", f"no card {card_no!r} with that identification code", field=field)
        if psn_no and card.psn_no != psn_no:
            raise CardRefused("CARD_UNKNOWN", f"card {card_no} is not person {psn_no!r}'s", field=field)
        if card.status == LOST:
            raise CardRefused("CARD_LOST", f"card {card_no} is reported lost", field=field)
        if card.status == CANCELLED:
            raise CardRefused("CARD_CANCELLED", f"card {card_no} is cancelled", field=field)
        if card.ready_on and dt.date.fromisoformat(card.ready_on) > clock.now().date():
            raise CardRefused(
                "CARD_NOT_READY", f"card {card_no} is still being made: ready on {card.ready_on}", field=field
            )
        return card

    def usable_card_of(self, psn_no: str) -> Card | None:
        """The person's card that is issued or active (at most one at a time), if any."""
        for card_no in self.cards_of.get(psn_no, []):
            if self.cards[card_no].status in (ISSUED, ACTIVE):
                return self.cards[card_no]
        return None

    def add_card(self, card: Card) -> None:
        self.cards[card.card_no] = card
        self.cards_of.setdefault(card.psn_no, []).append(card.card_no)

    def add_identity(self, ident: Identity) -> None:
        if ident.certno in self.by_certno:
            raise ValueError(f"ID number {ident.certno} is already registered")
        self.identities[ident.psn_no] = ident
        self.by_certno[ident.certno] = ident.psn_no

    def person_by_certno(self, certno: str) -> str:
        psn_no = self.by_certno.get(certno)
        if psn_no is None:
            raise CardRefused("UNKNOWN_PERSON", f"no insured person with ID number {certno!r}", field="mdtrt_cert_no")
        return psn_no

    # -- events -------------------------------------------------------------------------------

    def apply(self, kind: str, body: dict) -> None:
        if kind == CARD_EVENT and body["action"] == "issue":
            self.add_card(Card(**body["card"]))
        elif kind == CARD_EVENT:
            card = self.cards[body["card_no"]]
            card.status = {"activate": ACTIVE, "lost": LOST, "cancel": CANCELLED}[body["action"]]
            if body.get("replacement"):  # lost and replaced: a new card, issued, for the same person
                self.add_card(Card(**body["replacement"]))
        elif kind == PERSON_EVENT and body["action"] == "cancel":
            index = self.population.index_of(body["psn_no"])
            self.population.attrs["flags"][index] &= 0xFF & ~FLAG_ACTIVE  # the core reads this flag live
            self.ended[body["psn_no"]] = body.get("reason", "transfer_out")  # a transfer's cancel names none
            for card_no in self.cards_of.get(body["psn_no"], []):
                self.cards[card_no].status = CANCELLED

    def change_unit(self, psn_no: str, emp_no: str, emp_name: str) -> None:
        ident = self.identities[psn_no]
        ident.emp_no, ident.emp_name = emp_no, emp_name

    def in_transfer(self, psn_no: str) -> bool:
        """Whether the person left a region by a transfer not yet accepted (insured nowhere until it is)."""
        return any(c["psn_no"] == psn_no and not c["accepted"] and not c.get("void") for c in self.transfers.values())

    def add_contribution(self, psn_no: str, month: int) -> tuple[int, int]:
        """Record a month paid; the person's contribution run as it stands now (run_start, paid_through)."""
        months = self.contributions.setdefault(psn_no, set())
        months.add(month)
        return contribution_run(months, self.transfer_gaps.get(psn_no, ()))

    def file_transfer(self, certificate: dict) -> None:
        """The old region ends the relation (the person inactive, the cards cancelled) and keeps the certificate."""
        self.transfers[certificate["certificate_no"]] = dict(certificate)
        self.apply(PERSON_EVENT, {"action": "cancel", "psn_no": certificate["psn_no"]})

    def accept_transfer(
        self, certificate_no: str, psn_no: str, gap_months: list[int]
    ) -> tuple[dict, tuple[int, int] | None]:
        """The new region accepts: the certificate, and the contribution run counting the months lost to the
        transfer (None if the person has no contributions recorded here)."""
        cert = self.transfers[certificate_no]
        cert["accepted"] = True
        gaps = self.transfer_gaps.setdefault(psn_no, set())
        gaps.update(gap_months)
        months = self.contributions.get(psn_no, set())
        return cert, (contribution_run(months, gaps) if months else None)

    def baseinfo(self, psn_no: str, balance: int, *, today: dt.date) -> dict:
        """The 1101 answer for a person: baseinfo, insuinfo[], idetinfo[] (their age on ``today``)."""
        from ..money import fen_to_decimal  # noqa: PLC0415

        ident = self.identities[psn_no]
        d = self.population.describe(self.population.index_of(psn_no))
        flags = int(self.population.attrs["flags"][self.population.index_of(psn_no)])
        age = (today - ident.brdy).days // 365
        return {
            "baseinfo": {
                "psn_no": psn_no,
                "psn_cert_type": "01",
                "certno": ident.certno,
                "psn_name": ident.psn_name,
                "gend": ident.gend,
                "brdy": ident.brdy.isoformat(),
                "age": age,
            },
            "insuinfo": [
                {
                    "balc": fen_to_decimal(balance),
                    "insutype": d["insutype"],
                    "psn_type": d["psn_type"],
                    "psn_insu_stas": "1" if flags & FLAG_ACTIVE else "4",
                    "insuplc_admdvs": d["insuplc_admdvs"],
                    "emp_name": ident.emp_name,
                }
            ],
            "idetinfo": [{"psn_idet_type": "2301", "idet_name": "医疗救助对象"}] if flags & FLAG_ASSISTANCE else [],
            "cardinfo": [{"card_no": c, "status": self.cards[c].status} for c in self.cards_of.get(psn_no, [])],
        }
