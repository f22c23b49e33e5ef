"""``medsettle demo``'s simulated day at a hospital and a pharmacy (docs/simulation.md 'The demo').

:func:`~.day.play_day` plays the day on the simulator's parts and returns a :class:`~.day.DayResult`;
:mod:`.report` turns it into the timeline and the summary table, :mod:`.chart` into the PNG.
"""

from .day import DayResult, play_day

__all__ = ["DayResult", "play_day"]
