"""``python -m medsettle.cli``: the same command as ``medsettle``."""

from . import main

main(prog_name="medsettle")
