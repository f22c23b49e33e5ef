"""Generate the default catalogues shipped in src/medsettle/policy/data/ (run once; output committed).

Deterministic (seeded): the same command always writes the same files. Codes follow the shapes of the
national catalogue (X... western drugs, Z... Chinese patent medicines, numeric service items,
C... consumables); names, classes, prices and caps are illustrative, not any real region's list.

    python tools/gen_catalogue.py
"""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "medsettle" / "policy" / "data"

DRUGS = [
    "阿莫西林胶囊",
    "头孢克肟片",
    "布洛芬缓释胶囊",
    "二甲双胍片",
    "硝苯地平控释片",
    "阿托伐他汀钙片",
    "奥美拉唑肠溶胶囊",
    "氯雷他定片",
    "左氧氟沙星片",
    "甲钴胺片",
    "缬沙坦胶囊",
    "格列美脲片",
    "阿司匹林肠溶片",
    "氨氯地平片",
    "胰岛素注射液",
    "瑞舒伐他汀钙片",
    "蒙脱石散",
    "对乙酰氨基酚片",
    "复方甘草片",
    "氯化钠注射液",
]
HERBAL = [
    "连花清瘟胶囊",
    "板蓝根颗粒",
    "复方丹参滴丸",
    "藿香正气水",
    "六味地黄丸",
    "银翘解毒片",
    "血塞通软胶囊",
    "感冒清热颗粒",
]
SERVICES = [
    "普通门诊诊查费",
    "血常规检查",
    "尿常规检查",
    "肝功能测定",
    "心电图检查",
    "胸部X线摄影",
    "腹部彩超",
    "头颅CT平扫",
    "静脉输液",
    "肌肉注射",
    "床位费(三人间)",
    "护理费(二级)",
    "阑尾切除术",
    "白内障摘除术",
    "血液透析",
    "核磁共振(1.5T)",
]
MATERIALS = ["一次性输液器", "医用纱布", "留置针", "人工晶体", "心脏支架", "骨科内固定钢板", "导尿管", "缝合线"]

# The answer-only columns (2204/2301's result rows), by name or kind, so the same item has the same flags in
# both regions. Essential medicines (基本药物): the names above on the national essential medicines list.
ESSENTIAL = {
    "阿莫西林胶囊",
    "布洛芬缓释胶囊",
    "二甲双胍片",
    "硝苯地平控释片",
    "阿托伐他汀钙片",
    "奥美拉唑肠溶胶囊",
    "氯雷他定片",
    "左氧氟沙星片",
    "缬沙坦胶囊",
    "格列美脲片",
    "阿司匹林肠溶片",
    "氨氯地平片",
    "胰岛素注射液",
    "蒙脱石散",
    "对乙酰氨基酚片",
    "复方甘草片",
    "氯化钠注射液",
    "连花清瘟胶囊",
    "板蓝根颗粒",
    "复方丹参滴丸",
    "藿香正气水",
    "六味地黄丸",
    "银翘解毒片",
    "感冒清热颗粒",
}
CHILDREN = {"蒙脱石散", "对乙酰氨基酚片"}  # with children's dosage forms (儿童用药)
SPECIAL = {"血液透析", "核磁共振(1.5T)", "人工晶体", "心脏支架", "骨科内固定钢板"}  # high-value items listed apart
# med_chrgitm_type: western medicines 09, Chinese patent medicines 11, materials 08; services by what they are
SERVICE_TYPES = {
    "普通门诊诊查费": "02",
    "血常规检查": "04",
    "尿常规检查": "04",
    "肝功能测定": "04",
    "心电图检查": "03",
    "胸部X线摄影": "03",
    "腹部彩超": "03",
    "头颅CT平扫": "03",
    "静脉输液": "05",
    "肌肉注射": "05",
    "床位费(三人间)": "01",
    "护理费(二级)": "07",
    "阑尾切除术": "06",
    "白内障摘除术": "06",
    "血液透析": "05",
    "核磁共振(1.5T)": "03",
}
KIND_TYPES = {"drug": "09", "herbal": "11", "material": "08"}


def _money(rng: random.Random, low: float, high: float, places: int) -> Decimal:
    value = Decimal(str(round(rng.uniform(low, high), places)))  # ok-float: generating illustrative prices
    return value.quantize(Decimal(1).scaleb(-places))


def catalogue(region: str, seed: int, n_items: int = 240) -> list[dict[str, str]]:
    rng = random.Random(seed)
    shared = random.Random(20260101)  # codes and names shared by both regions (one national coding)
    # the answer-only flags draw from a stream of their own: the columns that existed before stay as they were
    flags_rng = random.Random(f"flags:{seed}")
    rows = []
    for i in range(n_items):
        kind = shared.choices(["drug", "herbal", "service", "material"], [45, 15, 28, 12])[0]
        if kind == "drug":
            head = f"X{shared.choice('ABCDJLMNR')}{shared.randint(1, 99):02d}"  # drawn in this order, as before
            code = f"{head}{shared.choice('ABCDE')}{shared.choice('ABCDEFG')}{i:03d}A{shared.randint(1, 999):03d}0101"
            name = shared.choice(DRUGS)
            price = _money(rng, 0.3, 200, 4)
        elif kind == "herbal":
            head = f"Z{shared.choice('ABCDF')}{shared.randint(1, 20):02d}"
            code = f"{head}{shared.choice('ABC')}{i:03d}B{shared.randint(1, 999):03d}0101"
            name = shared.choice(HERBAL)
            price = _money(rng, 1, 120, 4)
        elif kind == "service":
            code = f"{shared.randint(11, 33):02d}{shared.randint(1, 9999):04d}{i:03d}{shared.randint(0, 99):02d}0000"
            name = shared.choice(SERVICES)
            price = _money(rng, 3, 3000, 2)
        else:
            code = f"C{shared.randint(1, 20):02d}{shared.randint(1, 99):02d}{i:03d}{shared.randint(0, 9999):04d}01"
            name = shared.choice(MATERIALS)
            price = _money(rng, 2, 20000, 2)
        cls = rng.choices(["01", "02", "03"], [40, 45, 15])[0]
        selfpay = Decimal(0)
        if cls == "02":
            selfpay = rng.choice([Decimal("0.05"), Decimal("0.10"), Decimal("0.15"), Decimal("0.20"), Decimal("0.30")])
        row = {
            "med_list_codg": code,
            "name": f"{name}#{i:03d}",
            "chrgitm_lv": cls,
            "selfpay_prop": str(selfpay),
            "pric_uplmt_amt": "",
            "lmt_used_flag": "1" if cls == "02" and rng.random() < 0.1 else "0",
            "selfpay_prop_11": "",
            "selfpay_prop_12": "",
            "selfpay_prop_1501": "",
            "selfpay_prop_1502": "",
            "reference_price": str(price),
        }
        if cls == "02" and rng.random() < 0.15:
            # retirees pay a smaller self-pay-first share on some class B items
            row["selfpay_prop_12"] = str((selfpay / 2).quantize(Decimal("0.01")))
        if kind in ("service", "material") and cls != "03" and rng.random() < 0.5:
            cap = price * Decimal(rng.choice(["0.8", "0.9", "1.0", "1.2"]))
            row["pric_uplmt_amt"] = str(cap.quantize(Decimal("0.01")))
        row.update(_answer_flags(kind, name, cls, flags_rng))
        rows.append(row)
    return rows


def _answer_flags(kind: str, name: str, cls: str, rng: random.Random) -> dict[str, str]:
    """The columns only answers read: category by kind and name, essential and children's medicines by name,
    negotiated drugs some class B western ones (about one in eight, half of them reimbursed directly, as
    dual-channel negotiated drugs are), special items by name."""
    medicine = kind in ("drug", "herbal")
    negotiated = kind == "drug" and cls == "02" and rng.random() < 0.125
    direct = negotiated and rng.random() < 0.5
    return {
        "med_chrgitm_type": SERVICE_TYPES[name] if kind == "service" else KIND_TYPES[kind],
        "bas_medn_flag": "1" if medicine and name in ESSENTIAL else "0",
        "hi_nego_drug_flag": "1" if negotiated else "0",
        "chld_medc_flag": "1" if medicine and name in CHILDREN else "0",
        "list_sp_item_flag": "1" if name in SPECIAL else "0",
        "drt_reim_flag": "1" if direct else "0",
    }


def main() -> None:
    columns = [
        "med_list_codg",
        "name",
        "chrgitm_lv",
        "selfpay_prop",
        "pric_uplmt_amt",
        "lmt_used_flag",
        "selfpay_prop_11",
        "selfpay_prop_12",
        "selfpay_prop_1501",
        "selfpay_prop_1502",
        "reference_price",
        "med_chrgitm_type",
        "bas_medn_flag",
        "hi_nego_drug_flag",
        "chld_medc_flag",
        "list_sp_item_flag",
        "drt_reim_flag",
    ]
    for region, seed in (("130100", 1301), ("330300", 3303)):
        path = OUT / f"catalogue-{region}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(catalogue(region, seed))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
