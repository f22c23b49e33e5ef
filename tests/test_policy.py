"""Policy files: the shipped default is complete, and a bad file fails naming the file, field and reason."""

import copy

import pytest

from medsettle.errors import PolicyError
from medsettle.policy import load_default_policy, load_policy, policy_from_dict
from medsettle.policy.compile import compile_policy
from worlds import policy_dict


def test_default_policy_has_two_regions_both_schemes_and_large_catalogues():
    pol = load_default_policy()
    assert len(pol.regions) >= 2
    for region in pol.regions:
        assert set(region.insutypes) == {"310", "390"}
        assert len(region.rulesets) >= 1 and all(len(c.items) >= 200 for c in region.catalogues)
        classes = {item.chrgitm_lv for item in region.catalogues[0].items}
        assert classes == {"01", "02", "03"}
    compiled = compile_policy(pol)
    assert compiled.rs_ratio.max() <= 10_000 and compiled.item_cap.max() > 0


def test_money_in_toml_is_exact(tmp_path):
    (tmp_path / "p.toml").write_text(_toml_with(ceiling="1378.15"), encoding="utf-8")
    pol = load_policy(tmp_path / "p.toml")
    assert pol.regions[0].rulesets[0].benefits[0].ceiling == 137815


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (
            lambda d: d["regions"][0]["rulesets"][0]["benefits"][0].update(ceiling="-1.00"),
            "ceiling",
            "must not be negative",
        ),
        (lambda d: d["regions"][0]["rulesets"][0]["benefits"][0].update(ceiling="1.001"), "ceiling", "decimals"),
        (
            lambda d: d["regions"][0]["rulesets"][0]["benefits"][0]["tiers"]["1"].update(ratio="1.5"),
            "tiers.1.ratio",
            "must be at most 1 (100%), not 1.5",
        ),
        (lambda d: d["regions"][0]["rulesets"][0]["med_type_groups"].pop("21"), "med_type_groups", "not mapped"),
        (
            lambda d: d["regions"][0]["rulesets"][0]["med_type_groups"].update({"21": "dental"}),
            "med_type_groups",
            "unknown group",
        ),
        (lambda d: d["regions"][0]["rulesets"][0]["benefits"].pop(), "benefits", "exactly one is needed"),
        (lambda d: d["regions"][0].update(admdvs="12345"), "regions[0].admdvs", "6 digits"),
        (lambda d: d["regions"][0]["catalogues"][0]["items"][0].update(chrgitm_lv="04"), "chrgitm_lv", "01"),
        (
            lambda d: d["regions"][0]["catalogues"][0]["items"].append({"med_list_codg": "A1", "chrgitm_lv": "01"}),
            "catalogues",
            "appears twice",
        ),
        (
            lambda d: d["regions"][0]["rulesets"].append(copy.deepcopy(d["regions"][0]["rulesets"][0])),
            "rulesets",
            "strictly increasing",
        ),
        (lambda d: d["regions"][0]["rulesets"][0].update(waiting_months="x"), "waiting_months", "integer"),
        (lambda d: d["regions"][0]["rulesets"][0].update(surprise=1), "surprise", "Extra inputs"),
    ],
)
def test_bad_policy_names_file_field_and_reason(mutate, field, reason):
    d = policy_dict()
    mutate(d)
    with pytest.raises(PolicyError) as exc:
        policy_from_dict(d, source="bad.toml")
    text = str(exc.value)
    assert text.startswith("bad.toml: ") and field in text and reason in text, text


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("regions = [", encoding="utf-8")
    with pytest.raises(PolicyError, match="broken.toml: not valid TOML"):
        load_policy(tmp_path / "broken.toml")
    (tmp_path / "csv.toml").write_text(_toml_with(catalogue_file="nope.csv"), encoding="utf-8")
    with pytest.raises(PolicyError, match="nope.csv"):
        load_policy(tmp_path / "csv.toml")


def _toml_with(ceiling="1000.00", catalogue_file=None) -> str:
    catalogue = (
        f'file = "{catalogue_file}"' if catalogue_file else 'items = [{ med_list_codg = "A1", chrgitm_lv = "01" }]'
    )
    benefits = []
    for insutype, ptypes in (("310", '["11", "12"]'), ("390", '["1501", "1502"]')):
        for group in ("outpatient",):
            benefits.append(f'''
[[regions.rulesets.benefits]]
group = "{group}"
insutype = "{insutype}"
psn_types = {ptypes}
ceiling = {ceiling}
tiers = {{ "1" = {{ deductible = [100.00], ratio = 0.80 }} }}
''')
    return f"""
[[regions]]
admdvs = "110100"
groups = [{{ name = "outpatient" }}]

[[regions.catalogues]]
version = "c1"
effective_from = 2020-01-01
{catalogue}

[[regions.rulesets]]
version = "r1"
effective_from = 2026-01-01
med_type_groups = {{ "11" = "outpatient", "13" = "outpatient", "14" = "outpatient", "21" = "outpatient", \
"41" = "outpatient" }}
""" + "".join(benefits)


def test_a_dumped_policy_loads_again_unchanged():
    pol = load_default_policy()
    dumped = pol.model_dump(mode="json")
    assert dumped["regions"][0]["rulesets"][0]["benefits"][0]["ceiling"] == "5000.00"  # yuan, exact text
    assert policy_from_dict(dumped) == pol
