"""``medsettle hardware ...`` and ``medsettle card ...``: the virtual reader stack and the cards in it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..hardware.stack import StackError
from ._common import CREDENTIALS_OPTION, admin_request
from ._errors import fail_cleanly

HARDWARE_DIR = click.option(
    "--dir",
    "directory",
    default=str(Path("medsettle-data") / "hardware"),
    show_default=True,
    envvar="MEDSETTLE_HARDWARE_DIR",
    type=click.Path(file_okay=False),
    help="Where the stack keeps its pcscd configuration, logs and control socket "
    "(relative to the working directory; the stack is handed it absolute).",
)


# Stack errors and bad values (a PIN, a profile) fail as cleanly as medsettle's own errors.
_stack_errors = fail_cleanly(StackError, ValueError)


@click.group()
def hardware() -> None:
    """The virtual reader stack: pcscd with vpcd readers (card slot + PSAM slot per counter)."""


@hardware.command("up")
@HARDWARE_DIR
@click.option(
    "--counter",
    "counters",
    multiple=True,
    default=["Counter"],
    show_default=True,
    help="A reader entry (repeat for several counters).",
)
@_stack_errors
def hardware_up(directory: str, counters: tuple[str, ...]) -> None:
    """Start pcscd with one virtual reader per counter, each with a PSAM, in the background."""
    from ..hardware import daemon  # noqa: PLC0415

    client = daemon.start(directory, counters)
    for name, counter in client.status()["counters"].items():
        click.echo(f"{name}: card reader {counter['card_reader']!r}, PSAM reader {counter['psam_reader']!r}")
    click.echo(
        f"virtual reader stack up (pid {client.state['pid']}, files in {directory}); "
        "'medsettle card issue' inserts a card, 'medsettle hardware down' stops it"
    )


@hardware.command("down")
@HARDWARE_DIR
@_stack_errors
def hardware_down(directory: str) -> None:
    """Stop the virtual reader stack (cards are removed, pcscd is stopped)."""
    from ..hardware import daemon  # noqa: PLC0415

    click.echo("stopped" if daemon.stop(directory) else f"no virtual reader stack was running in {directory}")


@hardware.command("status")
@HARDWARE_DIR
@_stack_errors
def hardware_status(directory: str) -> None:
    """Show the readers of the running stack and the card in each."""
    from ..hardware.daemon import HardwareClient  # noqa: PLC0415

    click.echo(json.dumps(HardwareClient(directory).status(), ensure_ascii=False, indent=2))


@click.group()
def card() -> None:
    """Social security cards: issue a virtual card into a reader, read the card in a reader."""


@card.command("issue")
@click.argument("psn_no", required=False)
@click.option(
    "--persons",
    "persons_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Persons CSV (default: the centre's default population: 10,000 generated persons, seed 0).",
)
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), help="Policy TOML (default: shipped).")
@click.option(
    "--centre",
    "centre_url",
    help="Take the person's records from this running centre (for persons "
    "enrolled or cards issued there); default: the default population, as the centre generates it.",
)
@CREDENTIALS_OPTION
@click.option("--counter", help="Which counter's reader (default: the first).")
@click.option("--pin", default="123456", show_default=True, help="The PIN set at issue.")
@click.option("--cloned", is_flag=True, help="A clone: the data is genuine, the key is not.")
@click.option("--alter-name", help="Altered data: write this name into EF06 09 after issue.")
@HARDWARE_DIR
@_stack_errors
def card_issue(
    psn_no: str | None,
    persons_file: str | None,
    policy_file: str | None,
    centre_url: str | None,
    counter: str | None,
    pin: str,
    cloned: bool,
    alter_name: str | None,
    directory: str,
) -> None:
    """Personalise a virtual card from PSN_NO's records (default: the first person) and insert it."""
    from ..hardware.daemon import HardwareClient  # noqa: PLC0415

    if centre_url:
        from ..hardware.personalise import profile_from_record  # noqa: PLC0415

        if not psn_no:
            raise click.UsageError("with --centre, name the person (PSN_NO)")
        profile = profile_from_record(admin_request(centre_url, {"action": "card_record", "psn_no": psn_no}), pin)
    else:
        from ..centre.registry import Registry  # noqa: PLC0415
        from ..engine import Population  # noqa: PLC0415
        from ..hardware.personalise import profile_for  # noqa: PLC0415
        from ..policy import default_policy_path, load_policy  # noqa: PLC0415

        pol = load_policy(policy_file or default_policy_path())
        population = (
            Population.from_csv(pol, persons_file) if persons_file else Population.generate(pol, 10_000, seed=0)
        )
        profile = profile_for(Registry.generate(population), psn_no, pin=pin)
    altered = {0x09: alter_name.encode("gbk")} if alter_name else None
    answer = HardwareClient(directory).insert(profile, counter, cloned=cloned, altered=altered)
    click.echo(f"card {profile.card_no} of {profile.name} ({profile.certno}) inserted in {answer['reader']!r}")


def psam_of(reader_name: str) -> str | None:
    """The PSAM's reader of a card reader named by ``--reader``: slot 01 of the same reader entry
    ('Pharm 00 00' -> 'Pharm 00 01'), as ``card read --help`` says; None for a name not ending in slot 00."""
    return reader_name[:-3] + " 01" if reader_name.endswith(" 00") else None


@card.command("read")
@click.option("--reader", "reader_name", help="The reader (default: the first pcscd lists).")
@click.option(
    "--counter",
    help="The card reader of this counter of the running virtual stack, with its PSAM (instead of --reader).",
)
@click.option("--psam", "psam_name", help="The PSAM's reader (default: slot 01 of the same reader).")
@click.option("--pin", help="Verify this PIN too.")
@click.option("--no-auth", is_flag=True, help="Do not authenticate the card through the PSAM.")
@click.option("--wait", default=2.0, show_default=True, help="Seconds to wait for a card.")
@click.option("--trace", is_flag=True, help="Print every APDU to stderr (PINs masked).")
@HARDWARE_DIR
@_stack_errors
def card_read(
    reader_name: str | None,
    counter: str | None,
    psam_name: str | None,
    pin: str | None,
    no_auth: bool,
    wait: float,  # ok-float: seconds
    trace: bool,
    directory: str,
) -> None:
    """Read the card in the first reader (or --reader, or --counter's) and print it as JSON."""
    from ..readers import PcscReader  # noqa: PLC0415 - PyscardMissing (an Error: line) without pyscard
    from ..readers.trace import ApduTrace  # noqa: PLC0415

    if counter is not None:
        if reader_name is not None:
            raise click.UsageError("name the reader either by --reader or by --counter, not both")
        from ..hardware.daemon import HardwareClient  # noqa: PLC0415

        reader_name, counter_psam = HardwareClient(directory).readers(counter)
        psam_name = psam_name or counter_psam
    if reader_name is not None and psam_name is None:
        psam_name = psam_of(reader_name)
    with PcscReader(reader_name, psam_name, trace=ApduTrace(sys.stderr) if trace else None) as reader:
        reader.wait_for_card(wait)
        record = reader.read_card()
        if pin is not None:
            reader.verify_pin(pin)
        if not no_auth:
            reader.authenticate(record)
    click.echo(
        json.dumps(
            {"reader": reader.name, **record.as_dict(), "pin_verified": pin is not None, "authenticated": not no_auth},
            ensure_ascii=False,
            indent=2,
        )
    )


@card.command("remove")
@click.option("--counter", help="Which counter's reader (default: the first).")
@HARDWARE_DIR
@_stack_errors
def card_remove(counter: str | None, directory: str) -> None:
    """Take the card out of a reader of the running stack."""
    from ..hardware.daemon import HardwareClient  # noqa: PLC0415

    HardwareClient(directory).remove(counter)
    click.echo("removed")


@card.command("fault")
@click.argument("faults", nargs=-1)
@click.option("--counter", help="Which counter's reader (default: the first).")
@HARDWARE_DIR
@_stack_errors
def card_fault(faults: tuple[str, ...], counter: str | None, directory: str) -> None:
    """Give the card exactly these faults: mute, slow_s=SECONDS (per APDU), remove_mid_apdu, garbage,
    truncated, wrong_atr; 'none' (or no fault) clears them all."""
    from ..hardware.daemon import HardwareClient  # noqa: PLC0415
    from ..hardware.vpcd import parse_faults  # noqa: PLC0415

    settings = parse_faults(faults)  # a bad word fails here, before the stack is touched
    HardwareClient(directory).set_faults(counter, **settings)
    click.echo("faults: " + (", ".join(faults) if settings else "none"))
