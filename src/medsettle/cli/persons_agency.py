"""``medsettle persons enrol|change-unit|change-scheme|unemployed|reemployed|contribute|issue-card|employer-cards|
transfer-out|transfer-in|transfer-undo|credit-run|qr|emergency-claim|paperwork``: the agency's side of persons and
cards, each one admin request to a running centre (POST /admin)."""

from __future__ import annotations

from typing import Any

import click

from ._common import CENTRE_OPTION, month_option, print_admin


def _post(centre_url: str, body: dict[str, Any]) -> None:
    print_admin(centre_url, {k: v for k, v in body.items() if v is not None})


CENTRE = CENTRE_OPTION


def register_agency_commands(persons: click.Group) -> None:
    @persons.command("enrol")
    @click.option("--region", "insuplc_admdvs", required=True, help="Insured region (6 digits).")
    @click.option("--insutype", required=True, type=click.Choice(["310", "390"]), help="310 employee, 390 resident.")
    @click.option("--psn-type", required=True, type=click.Choice(["11", "12", "1501", "1502"]))
    @click.option("--certno", required=True, help="18-character citizen ID number.")
    @click.option("--name", "psn_name", required=True)
    @click.option("--sex", "gend", required=True, type=click.Choice(["1", "2"]), help="1 male, 2 female.")
    @click.option("--born", "brdy", required=True, help="Birth date yyyy-mm-dd.")
    @click.option("--emp-no", help="Employees: the unit's code.")
    @click.option("--emp-name", help="Employees: the unit's name.")
    @click.option(
        "--uncovered-years",
        type=int,
        default=0,
        show_default=True,
        help="Residents enrolling late: years without cover (extra waiting months).",
    )
    @click.option("--assistance", is_flag=True, help="Has the medical-assistance identity.")
    @click.option("--flexible", is_flag=True, help="Employees: a flexible employee, no unit, paying themselves.")
    @CENTRE
    def enrol(centre_url: str, **fields: str | int | bool | None) -> None:
        """Enrol a person: an employee with a unit, a flexible employee with none (--flexible), or a resident in
        the region's virtual unit. An ID number whose insurance here ended (emigration, household, a cancelled
        transfer) is re-enrolled with the same person number: a new relation, the old one kept, a new waiting
        period."""
        _post(centre_url, {"action": "enrol", **fields})

    @persons.command("change-scheme")
    @click.argument("psn_no")
    @click.option("--insutype", required=True, type=click.Choice(["310", "390"]), help="The scheme entered.")
    @click.option("--psn-type", required=True, type=click.Choice(["11", "12", "1501", "1502"]))
    @click.option("--emp-no", help="Into 310 with a unit: the unit's code.")
    @click.option("--emp-name", help="Into 310 with a unit: its name.")
    @click.option("--certificate", help="Into 310 with a unit: the unit's registration certificate number.")
    @click.option("--flexible", is_flag=True, help="Into 310 as a flexible employee (no unit).")
    @CENTRE
    def change_scheme(centre_url: str, **fields: str | bool | None) -> None:
        """Move a person between the resident scheme (390) and the employee scheme (310): a resident who finds a
        job (the account opens), or an employee who leaves it. The months paid carry over; the year's
        accumulators are per scheme."""
        _post(centre_url, {"action": "change_scheme", **fields})

    @persons.command("unemployed")
    @click.argument("psn_no")
    @CENTRE
    def unemployed(centre_url: str, psn_no: str) -> None:
        """An employee leaves their unit: insured in 310 while the months are paid (the unemployment insurance
        pays them: 'contribute' with its base); the card stays usable until re-employment."""
        _post(centre_url, {"action": "unemployed", "psn_no": psn_no})

    @persons.command("reemployed")
    @click.argument("psn_no")
    @click.option("--emp-no", required=True, help="The new unit's code.")
    @click.option("--emp-name", required=True, help="Its name.")
    @click.option("--certificate", required=True, help="The new unit's registration certificate number.")
    @CENTRE
    def reemployed(centre_url: str, **fields: str) -> None:
        """An unemployed person's new unit: the old card is cancelled and the new unit applies for the new card
        ('employer-cards' or 'issue-card')."""
        _post(centre_url, {"action": "reemployed", **fields})

    @persons.command("change-unit")
    @click.argument("psn_no")
    @click.option("--emp-no", required=True)
    @click.option("--emp-name", required=True)
    @click.option("--certificate", required=True, help="The new unit's registration certificate number.")
    @click.option("--card-no", required=True, help="The person's card, presented.")
    @click.option("--certno", required=True, help="The person's ID number, as their ID card shows it.")
    @CENTRE
    def change_unit(centre_url: str, **fields: str) -> None:
        """Move an employee to a new unit, on the new unit's certificate, the person's card and ID card."""
        _post(centre_url, {"action": "change_unit", **fields})

    @persons.command("contribute")
    @click.argument("psn_no")
    @click.option("--month", required=True, callback=month_option, help="The month paid for, yyyy-mm.")
    @click.option("--base", help="Employees in service: the contribution base in yuan.")
    @CENTRE
    def contribute(centre_url: str, **fields: str | None) -> None:
        """Record a month's contribution; credits the account (a share of the base, or the retirees' sum)."""
        _post(centre_url, {"action": "contribute", **fields})

    @persons.command("issue-card")
    @click.argument("psn_no")
    @click.option("--channel", required=True, type=click.Choice(["on_the_spot", "service_point", "delegate"]))
    @click.option("--delegate-certno", help="With --channel delegate: the delegate's ID number.")
    @click.option("--certno", help="The holder's ID number (a delegate presents it too).")
    @CENTRE
    def issue_card(centre_url: str, **fields: str | None) -> None:
        """Issue a social security card (ready at once on the spot or by a delegate, 3 working days at a point).
        A delegate presents their own ID number and the holder's."""
        _post(centre_url, {"action": "issue_card", **fields})

    @persons.command("employer-cards")
    @click.argument("emp_no")
    @click.argument("psn_nos", nargs=-1, required=True)
    @click.option("--letter", "letter_no", required=True, help="The unit's letter of introduction (its number).")
    @click.option("--operator-certno", required=True, help="The ID number of the unit's person who applies.")
    @CENTRE
    def employer_cards(centre_url: str, emp_no: str, psn_nos: tuple[str, ...], **papers: str) -> None:
        """Issue cards in bulk through an employer for its employees (all checked before any is made), on the
        unit's letter of introduction and its operator's ID."""
        _post(centre_url, {"action": "issue_cards_employer", "emp_no": emp_no, "psn_nos": list(psn_nos), **papers})

    @persons.command("transfer-out")
    @click.argument("psn_no")
    @click.option("--to", "to_admdvs", required=True, help="The new region (6 digits).")
    @click.option("--acceptance-letter", required=True, help="The new region's letter of acceptance (its number).")
    @CENTRE
    def transfer_out(centre_url: str, **fields: str) -> None:
        """End the relation here and issue a transfer certificate (balance and accumulators on it), on the new
        region's letter of acceptance."""
        _post(centre_url, {"action": "transfer_out", **fields})

    @persons.command("transfer-in")
    @click.argument("certificate_no")
    @click.option("--emp-no", help="Employees: the unit in the new region.")
    @click.option("--emp-name", help="Employees: its name.")
    @CENTRE
    def transfer_in(centre_url: str, **fields: str | None) -> None:
        """Accept a transfer certificate in the new region."""
        _post(centre_url, {"action": "transfer_in", **fields})

    @persons.command("transfer-undo")
    @click.argument("certificate_no")
    @CENTRE
    def transfer_undo(centre_url: str, certificate_no: str) -> None:
        """Undo a transfer out not yet accepted: the person insured here again as before it, the certificate
        void."""
        _post(centre_url, {"action": "transfer_undo", "certificate_no": certificate_no})

    @persons.command("credit-run")
    @click.option("--month", required=True, callback=month_option, help="The month credited, yyyy-mm.")
    @CENTRE
    def credit_run(centre_url: str, month: str) -> None:
        """The month-end account credit, as the bank makes it: every account due one for the month, once (a
        second run credits nothing); answers how many were credited, already credited and not eligible."""
        _post(centre_url, {"action": "credit_run", "month": month})

    @persons.command("qr")
    @click.argument("psn_no")
    @CENTRE
    def qr(centre_url: str, psn_no: str) -> None:
        """Issue a QR e-voucher token (mdtrt_cert_type 01) for a person, valid 5 minutes."""
        _post(centre_url, {"action": "issue_qr", "psn_no": psn_no})

    @persons.command("emergency-claim")
    @click.argument("psn_no")
    @click.option("--date", "date", required=True, help="The day of the care, yyyy-mm-dd.")
    @click.option("--institution", "institution_name", required=True, help="The non-agreed institution's name.")
    @click.option("--institution-code", help="Its code, if it has one (an agreed institution's is refused).")
    @click.option("--region", "institution_admdvs", required=True, help="The region it is in (6 digits).")
    @click.option("--level", "hosp_lv", required=True, type=click.Choice(["1", "2", "3"]), help="Its tier.")
    @click.option("--invoice", "invoice_no", required=True, help="The receipt's number (claimed once).")
    @click.option("--admission", is_flag=True, help="An emergency admission (med_type 21), not emergency care (13).")
    @click.option("--item", "items", multiple=True, required=True, help="CODE:PRICE_FEN:COUNT, once per line.")
    @click.option("--total", "medfee_sumamt", required=True, type=int, help="The receipt's total, fen.")
    @CENTRE
    def emergency_claim(centre_url: str, items: tuple[str, ...], admission: bool, **fields: str | int | None) -> None:
        """Claim emergency care at a non-agreed institution at the insured region's agency: settled with the drug
        scope the region's policy relaxes for it (emergency_scope), the fund's share paid back."""
        lines = []
        for text in items:
            parts = text.split(":")
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                raise click.BadParameter(f"{text!r}: write CODE:PRICE_FEN:COUNT", param_hint="--item")
            lines.append({"med_list_codg": parts[0], "pric": int(parts[1]), "cnt": int(parts[2])})
        body = {"action": "emergency_claim", "med_type": "21" if admission else "13", "items": lines, **fields}
        _post(centre_url, body)

    @persons.command("paperwork")
    @click.argument("psn_no")
    @CENTRE
    def paperwork(centre_url: str, psn_no: str) -> None:
        """What the person presented with each procedure that asks for papers (read-only)."""
        _post(centre_url, {"action": "paperwork", "psn_no": psn_no})
