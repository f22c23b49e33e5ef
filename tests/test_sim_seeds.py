"""Twenty seeds of the default profile (10 institutions, every kind of fault) through `medsettle sim soak`, as
CI runs them in the pytest suite (docs/simulation.md 'Soaking many seeds: `sim soak`'): no invariant broken,
nothing crashed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

SEEDS = 20


def test_twenty_seeds_of_the_default_profile_break_no_invariant():
    r = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "sim", "soak", "--seeds", str(SEEDS), "--jobs", "2"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,  # a bound, not an expectation: about 40 s on two cores
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert re.search(rf"^seeds run +{SEEDS}$", r.stdout, re.M), r.stdout
    assert re.search(r"^violations +0$", r.stdout, re.M), r.stdout
    assert re.search(r"^errors +0$", r.stdout, re.M), r.stdout
    assert "10 institutions" in r.stderr and "profile default" in r.stderr, r.stderr
    faults = int(re.search(r"^faults injected +([\d,]+)$", r.stdout, re.M).group(1).replace(",", ""))
    assert faults > SEEDS, "the default profile injected almost no faults"
