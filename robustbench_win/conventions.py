"""Names and defaults that the suite shares with the stages after it, declared once below all of them.

- The sanity checks' names: the keys of a suite's ``[checks]`` table, the ``check`` column of the
  stored check records and the order the checks run and are listed in. The checks themselves are
  :mod:`robustbench_win.measure.checks`.
- :data:`DEFAULT_RADII`: the L2 radii robust accuracy is read at when a suite's ``[report]``
  table names none (and for a run folder that did not record its radii).
"""

from __future__ import annotations

RANDOMIZED = "randomized-outputs"
NON_FINITE = "non-finite-outputs"
PROBABILITIES = "probability-outputs"
GRADIENTS = "input-gradients"
CHANCE = "chance-level"
CROSS_CHECK = "cross-check"
CHECK_NAMES: tuple[str, ...] = (RANDOMIZED, NON_FINITE, PROBABILITIES, GRADIENTS, CHANCE, CROSS_CHECK)  # in run order

DEFAULT_RADII: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # L2, pixels in [0, 1]
