"""Dixon's k for the up-down method: the published table and its maximum-likelihood derivation.

The 50 % threshold of an up-down series is ``Xf + k * delta`` (log units), ``Xf`` the last stimulus
and ``k`` read from Dixon's table for the pattern of responses (X = response, O = none) (Dixon 1965,
JASA 60:967; Dixon 1980, Annu Rev Pharmacol Toxicol 20:441; used by Chaplan et al. 1994 for von Frey).

The table is indexed by the *first part* of the series (the opening run of identical responses,
``O`` to ``OOOO``) and the *second part* (from the first change of response on, ``X...``); Dixon's
nominal sample size N is the second part's length + 1. Series that open with X use the mirror image:
``k(pattern) = -k(pattern with X and O swapped)``.

Dixon derived k as the maximum-likelihood estimate of the 50 % point under a normal tolerance
distribution whose standard deviation equals the step, using every response in the series;
:func:`dixon_k_ml` recomputes it that way. The tests check every encoded entry against it, which is
how a wrong entry that circulates in a shared spreadsheet (``XOOOOO`` given as -0.983; the table and
the likelihood both give -0.893) is caught.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import norm

__all__ = ["DIXON_K", "dixon_k", "dixon_k_ml", "mirror"]

# Second part -> k for first parts (O, OO, OOO, OOOO). Values from Dixon's table (as reproduced in
# get-a-grep/VonFreyCalculator and raqueladaia/vf_updown_analysis), checked against dixon_k_ml.
_TABLE: dict[str, tuple[float, float, float, float]] = {
    # N = 2
    "X": (-0.500, -0.388, -0.378, -0.377),
    # N = 3
    "XO": (0.842, 0.890, 0.894, 0.894),
    "XX": (-0.178, 0.000, 0.026, 0.028),
    # N = 4
    "XOO": (0.299, 0.314, 0.315, 0.315),
    "XOX": (-0.500, -0.439, -0.432, -0.432),
    "XXO": (1.000, 1.122, 1.139, 1.140),
    "XXX": (0.194, 0.449, 0.500, 0.506),
    # N = 5
    "XOOO": (-0.157, -0.154, -0.154, -0.154),
    "XOOX": (-0.878, -0.861, -0.860, -0.860),
    "XOXO": (0.701, 0.737, 0.741, 0.741),
    "XOXX": (0.084, 0.169, 0.181, 0.182),
    "XXOO": (0.305, 0.372, 0.380, 0.381),
    "XXOX": (-0.305, -0.169, -0.144, -0.142),
    "XXXO": (1.288, 1.500, 1.544, 1.549),
    "XXXX": (0.555, 0.897, 0.985, 1.000),
    # N = 6
    "XOOOO": (-0.547, -0.547, -0.547, -0.547),
    "XOOOX": (-1.250, -1.247, -1.246, -1.246),
    "XOOXO": (0.372, 0.380, 0.381, 0.381),
    "XOOXX": (-0.169, -0.144, -0.142, -0.142),
    "XOXOO": (0.022, 0.039, 0.040, 0.040),
    "XOXOX": (-0.500, -0.458, -0.453, -0.453),
    "XOXXO": (1.169, 1.237, 1.247, 1.248),
    "XOXXX": (0.611, 0.732, 0.756, 0.758),
    "XXOOO": (-0.296, -0.266, -0.263, -0.263),
    "XXOOX": (-0.831, -0.763, -0.753, -0.752),
    "XXOXO": (0.831, 0.935, 0.952, 0.954),
    "XXOXX": (0.296, 0.463, 0.500, 0.504),
    "XXXOO": (0.500, 0.648, 0.678, 0.681),
    "XXXOX": (-0.043, 0.187, 0.244, 0.252),
    "XXXXO": (1.603, 1.917, 2.000, 2.014),
    "XXXXX": (0.893, 1.329, 1.465, 1.496),
}


def mirror(pattern: str) -> str:
    """Swap X and O (a series that opens with X reads as the mirror of one that opens with O)."""
    return pattern.translate(str.maketrans("XO", "OX"))


def _build() -> dict[str, float]:
    table: dict[str, float] = {}
    for second, ks in _TABLE.items():
        for n_o, k in enumerate(ks, start=1):
            pattern = "O" * n_o + second
            table[pattern] = k
            table[mirror(pattern)] = -k if k else 0.0
    return table


#: Every pattern of Dixon's table (both the O-first entries and their X-first mirrors) -> k.
DIXON_K: dict[str, float] = _build()


def _check_pattern(pattern: str) -> str:
    pattern = pattern.strip().upper()
    if not pattern or set(pattern) - {"X", "O"}:
        raise ValueError(f"expected a pattern of X (response) and O (no response), got {pattern!r}")
    return pattern


def dixon_k(pattern: str) -> float:
    """Dixon's tabulated k for a response pattern such as ``"OOXOXX"``.

    Raises
    ------
    ValueError
        If the pattern is not in Dixon's table (an opening run longer than four, no change of
        response, or a second part longer than five); use :func:`dixon_k_ml` for those.
    """
    pattern = _check_pattern(pattern)
    if pattern not in DIXON_K:
        raise ValueError(
            f"pattern {pattern!r} is not in Dixon's table (opening run of 1-4 identical responses, "
            "then 1-5 responses from the first change on)"
        )
    return DIXON_K[pattern]


def dixon_k_ml(pattern: str, positions: np.ndarray | None = None) -> float:
    """k as the maximum-likelihood 50 % point, in steps from the last stimulus (Dixon's derivation).

    Parameters
    ----------
    pattern
        Responses in the order given (X / O), the last one at the final stimulus.
    positions
        Stimulus levels in steps relative to the last stimulus. Default: the ideal up-down walk
        (one step down after X, one up after O), which is what Dixon's table assumes.

    Returns
    -------
    float
        The estimate of the 50 % point relative to the last stimulus, in steps (sigma = one step).

    Raises
    ------
    ValueError
        If the responses never change (the likelihood has no maximum).
    """
    pattern = _check_pattern(pattern)
    if len(set(pattern)) < 2:
        raise ValueError(f"expected both X and O in the pattern, got {pattern!r} (no finite estimate)")
    responded = np.array([c == "X" for c in pattern])
    if positions is None:
        # Walk backwards from the last stimulus (level 0): the stimulus before an X was one step
        # higher than the one after it, the stimulus before an O one step lower.
        x = np.zeros(len(pattern))
        for i in range(len(pattern) - 2, -1, -1):
            x[i] = x[i + 1] + (1.0 if responded[i] else -1.0)
    else:
        x = np.asarray(positions, dtype=float)
        if x.shape != (len(pattern),):
            raise ValueError(f"expected {len(pattern)} positions, got shape {x.shape}")

    def negative_log_likelihood(mu: float) -> float:
        z = x - mu
        return -(norm.logcdf(z[responded]).sum() + norm.logsf(z[~responded]).sum())

    span = len(pattern) + 2.0
    result = minimize_scalar(
        negative_log_likelihood,
        bounds=(x.min() - span, x.max() + span),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(result.x)
