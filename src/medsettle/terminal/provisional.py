"""Provisional settlement at a store-and-forward counter (docs/failures.md): with the rules and catalogue the
counter cached at sign-in (:mod:`.rules_cache`: 9901 and the platform's catalogue downloads), without the
personal account, assuming nothing met or paid this year and no second tier or assistance. It runs the
reference engine on a one-person world built from the cache.

Choices where the platform's contract is silent: the counter settles provisionally only for a person it knows
(an earlier 1101 answer, kept in its journal: scheme, person type, insured region) who is insured in the
counter's own region (it caches only its region's rules); anyone else pays cash against a deferred voucher.
"""

from __future__ import annotations

from ..errors import MedsettleError


class CannotSettleProvisionally(MedsettleError):
    code = "NO_PROVISIONAL_SETTLEMENT"


def provisional_split(rules: dict, catalogue: dict, person: dict, bill: dict) -> dict:
    """The provisional setlinfo of ``bill`` for ``person`` (insutype, psn_type, insuplc_admdvs)."""
    # Here, not at the module's top: only a store-and-forward sale needs the engine, whose import costs most
    # of a second of every `medsettle terminal` command.
    from ..engine import Population, Settler  # noqa: PLC0415
    from ..policy import policy_from_dict  # noqa: PLC0415

    ruleset = {**rules["ruleset"], "second_tier": [], "assistance": {"ratio": "0", "annual_cap": "0"}}
    region = {
        "admdvs": rules["admdvs"],
        "groups": rules["groups"],
        "rulesets": [ruleset],
        "catalogues": [
            {"version": catalogue["ver"], "effective_from": catalogue["effective_from"], "items": catalogue["items"]}
        ],
    }
    try:
        policy = policy_from_dict({"regions": [region]})
    except MedsettleError as error:
        raise CannotSettleProvisionally(f"the cached rules do not load: {error}") from None
    population = Population.from_rows(
        policy,
        [
            {
                "psn_no": "PROVISIONAL",
                "insutype": person["insutype"],
                "psn_type": person["psn_type"],
                "insuplc_admdvs": rules["admdvs"],
                "balance": "0",
                "active": "1",
                "assistance": "0",
                "contrib_from": "1990-01",
                "paid_through": "2099-12",
            }
        ],
    )
    settler = Settler(policy, population, engine="reference")
    provisional_bill = {**bill, "psn_no": "PROVISIONAL", "acct_used_flag": "0", "mdtrtarea_admvs": rules["admdvs"]}
    try:
        return settler.presettle(provisional_bill).setlinfo()
    except MedsettleError as error:
        raise CannotSettleProvisionally(f"the bill does not settle with the cached rules: {error}") from None
