"""``medsettle policy check|path``: validate a policy file, find the shipped default."""

from __future__ import annotations

import click

from ..policy import default_policy_path, load_policy
from ._errors import fail_cleanly


@click.group()
def policy() -> None:
    """Region rules: validate a policy file, find the shipped default."""


@policy.command("check")
@click.argument("policy_file", type=click.Path())
@fail_cleanly()
def policy_check(policy_file: str) -> None:
    """Validate a policy file; print what it holds, or the file, field and reason of the first problem."""
    pol = load_policy(policy_file)
    for region in pol.regions:
        items = sum(len(c.items) for c in region.catalogues)
        click.echo(
            f"{region.admdvs} {region.name}: schemes {', '.join(region.insutypes)}; "
            f"groups {', '.join(g.name for g in region.groups)}; rule sets "
            f"{', '.join(f'{rs.version} from {rs.effective_from}' for rs in region.rulesets)}; "
            f"{len(region.catalogues)} catalogue version(s), {items} items"
        )
    click.echo(f"{policy_file}: ok")


@policy.command("path")
def policy_path() -> None:
    """Print the path of the shipped default policy (copy it to start your own)."""
    click.echo(default_policy_path())
