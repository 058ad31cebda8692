"""Simulated runs with a known effect, seeds crossed with images, to check the verdict's false-positive rate.

Synthetic minimal-norm results for the calibration of the verdict: with ``effect = 0`` the share
of decisive verdicts is its false-positive rate, with an effect its power. Used by
``tests/test_inference.py`` (a fast check) and ``benchmarks/bench_verdict_calibration.py`` (a
bigger grid, and the earlier pooled design for comparison). One simulated run: ``n_seeds``
trained pairs (windowed, baseline) evaluated on the same ``n_images`` test images. Norms are
built exchangeably, so with ``effect = 0`` the windowed and baseline norms have the same
distribution and every estimand is exactly zero:

``m_si = image_i * exp(seed-level and residual noise)``, a common level;
``half_si = (effect + a_s + c_i + e_si) / 2``, half the log-ratio of the two models' norms, with
``a_s ~ N(0, seed_sd)`` the between-seed spread of the effect, ``c_i ~ N(0, image_sd)`` a
per-image effect crossed with the seeds (shared by every seed; centred over the test images
when ``centred``: no effect on these images), ``e_si ~ N(0, noise_sd)``;
``windowed = m * exp(+half)``, ``baseline = m * exp(-half)``; each model then misclassifies an
image (norm 0) or fails to find an adversarial (norm +inf) independently with small
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Design:
    """The parameters of a simulated run (log-scale effects)."""

    n_seeds: int = 5
    n_images: int = 100
    effect: float = 0.0
    seed_sd: float = 0.15
    image_sd: float = 0.3
    noise_sd: float = 0.3
    centred: bool = True
    p_misclassified: float = 0.05
    p_failed: float = 0.03
    radius: float = 2.0


def simulate(design: Design, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(windowed, baseline)`` norms, each ``(n_seeds, n_images)``: 0 misclassified, +inf failed."""
    s, i = design.n_seeds, design.n_images
    image = rng.lognormal(np.log(0.8), 0.5, i)
    level = image[None, :] * np.exp(rng.normal(0, 0.1, (s, 1)) + rng.normal(0, 0.2, (s, i)))
    per_image = rng.normal(0, design.image_sd, i)
    if design.centred:
        per_image -= per_image.mean()
    half = (design.effect + rng.normal(0, design.seed_sd, (s, 1)) + per_image[None, :]
            + rng.normal(0, design.noise_sd, (s, i))) / 2.0
    norms = []
    for sign in (1.0, -1.0):
        value = level * np.exp(sign * half)
        value[rng.random((s, i)) < design.p_failed] = np.inf
        value[rng.random((s, i)) < design.p_misclassified] = 0.0
        norms.append(value)
    return norms[0], norms[1]
