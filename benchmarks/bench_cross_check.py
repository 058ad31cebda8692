"""Which decision-based attack the sanity cross-check uses: cost and quality side by side.

Run::

    python benchmarks/bench_cross_check.py [--models 3:none,11:hamming] [--images 10]
    python benchmarks/bench_cross_check.py --smoke   # seconds: does it still run?

On the quick preset's models (seed 0, from the checkpoint store, trained if absent), the
cross-check's images (:func:`robustbench_win.measure.checks.cross_check_indices` among the
runner's attacked digits that the model classifies correctly) are attacked by FMN at the quick
preset's setting (the best-known norm) and by three decision-based L2 attacks, all started
from the same point (the nearest attacked digit of another predicted class): foolbox's
``BoundaryAttack``, ART's ``HopSkipJump`` and foolbox's ``HopSkipJumpAttack``. Printed per model
and attack: forward passes per image (counted by a wrapper around the model), seconds, the
median ratio of the verified norm to FMN's, and how many images got a norm below FMN's.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from robustbench_win.data.prepare import prepare_data
from robustbench_win.measure import checks
from robustbench_win.registry import ATTACKS
from robustbench_win.run.runner import attack_indices
from robustbench_win.suite import load_suite
from robustbench_win.train.checkpoints import CheckpointStore, ModelSpec
from robustbench_win.train.obtain import obtain_model

# --smoke: one model (k = 3, no window) trained for one epoch on 1,000 digits in a temporary
# checkpoint store, 2 images, foolbox's HopSkipJump at 2 steps: checks that it runs, measures nothing.
SMOKE_OVERRIDES = ["train_size=1000", "train.epochs=1", "train.milestones=[]"]
SMOKE_ATTACK, SMOKE_STEPS = "foolbox HopSkipJump", 2


class Counting(nn.Module):
    """Counts the images put through the model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.model(x.float())  # ART hands float64 batches


def boundary(model: nn.Module, x: torch.Tensor, y: torch.Tensor, starts: torch.Tensor, steps: int) -> torch.Tensor:
    import foolbox as fb
    attack = fb.attacks.BoundaryAttack(steps=steps)
    return attack.run(fb.PyTorchModel(model, bounds=(0, 1)), x, y, starting_points=starts)


def art_hsj(model: nn.Module, x: torch.Tensor, y: torch.Tensor, starts: torch.Tensor, steps: int) -> torch.Tensor:
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import PyTorchClassifier
    classifier = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=10,
                                   clip_values=(0.0, 1.0))
    attack = HopSkipJump(classifier, targeted=False, norm=2, max_iter=steps, max_eval=100, init_eval=20, verbose=False)
    return torch.as_tensor(attack.generate(x.numpy(), x_adv_init=starts.numpy()))


def fb_hsj(model: nn.Module, x: torch.Tensor, y: torch.Tensor, starts: torch.Tensor, steps: int) -> torch.Tensor:
    return checks.hop_skip_jump(model, x, y, starts, steps=steps)


ATTACKS_TRIED = {"foolbox BoundaryAttack": (boundary, (200, 1000)), "ART HopSkipJump": (art_hsj, (10, 20)),
                 "foolbox HopSkipJump": (fb_hsj, (10, 20))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="3:none,11:hamming")
    parser.add_argument("--images", type=int, default=checks.CROSS_CHECK_IMAGES)
    parser.add_argument("--attacks", default=",".join(ATTACKS_TRIED), help="comma-separated names of the table")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: one tiny model, 2 images, foolbox HopSkipJump at 2 steps; measures nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench-cross-check-") as scratch:
            args.models, args.images, args.attacks = "3:none", 2, SMOKE_ATTACK
            benchmark(args, SMOKE_OVERRIDES, CheckpointStore(Path(scratch)), {SMOKE_ATTACK: (SMOKE_STEPS,)})
    else:
        benchmark(args, [], CheckpointStore(), {name: budgets for name, (_, budgets) in ATTACKS_TRIED.items()})


def benchmark(args: argparse.Namespace, overrides: list[str], store: CheckpointStore,
              budgets_of: dict[str, tuple[int, ...]]) -> None:
    """Trains or loads the models, runs the attacks at their budgets and prints the table."""
    config = load_suite("quick", overrides)
    data = prepare_data(config.dataset, train_size=config.train_size, test_size=config.test_size, data_dir=None,
                        download=False)
    indices = attack_indices(data, config.attack_samples)
    images, labels = data.test_tensors(indices)
    fmn = next(a for a in config.attacks if a.name == "fmn")
    rows = []
    for item in args.models.split(","):
        k, window = item.split(":")
        spec = ModelSpec(config.model, {"kernel_size": int(k), "window": window, **config.model_args}, config.dataset,
                         config.train, seed=0, train_size=config.train_size)
        model = obtain_model(spec, data, store, progress=False, evaluate_test=False).model.eval()
        with torch.no_grad():
            predicted = model(images).argmax(1)
        chosen = torch.as_tensor(checks.cross_check_indices(np.flatnonzero((predicted == labels).numpy()), args.images))
        x, y = images[chosen], labels[chosen]
        results = ATTACKS.create("fmn", **fmn.params)(model, x, y, chosen.tolist(), progress=False)
        best = torch.tensor([r.l2 if r.success else math.inf for r in results])
        distance = torch.cdist(x.flatten(1), images.flatten(1))
        distance[predicted[None, :] == y[:, None]] = math.inf
        starts = images[distance.argmin(1)]
        for name, (run, _) in ATTACKS_TRIED.items():
            if name not in args.attacks.split(","):
                continue
            for steps in budgets_of[name]:
                counted = Counting(model).eval()
                start = time.perf_counter()
                adv = run(counted, x, y, starts, steps).float().clamp(0, 1)
                seconds = time.perf_counter() - start
                with torch.no_grad():
                    fooled = model(adv).argmax(1) != y
                norms = torch.where(fooled, (adv - x).flatten(1).norm(dim=1), torch.tensor(math.inf))
                rows.append({"model": f"k{k} {window}", "attack": name, "steps": steps,
                             "forward/image": counted.images / len(x), "seconds": round(seconds, 2),
                             "median norm / fmn": float(torch.median(norms / best)),
                             "below fmn": int((norms < (1 - checks.CROSS_CHECK_MARGIN) * best).sum()),
                             "images": len(x)})
                print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
