"""``python -m medsettle``: the same command as ``medsettle``."""

from .cli import main

main(prog_name="medsettle")
