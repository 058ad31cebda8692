"""Models trained elsewhere: a state-dict file loaded into a registered model, ready to attack.

A weights file holds the ``state_dict()`` of a model built by the registry (``torch.save(
model.state_dict(), "model.pt")``); it is read with ``torch.load(weights_only=True)``, so a
file can hold tensors but no code. The model is built with the arguments of its
:class:`~robustbench_win.train.checkpoints.ModelSpec` and the data set's channels and classes, and
the weights must fit it exactly (every key, every shape).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from robustbench_win.errors import BadValueError
from robustbench_win.train.checkpoints import ModelSpec, build_model
from robustbench_win.train.contract import check_model_contract
from robustbench_win.data.datasets import ImageData
from robustbench_win.train.loop import evaluate
from robustbench_win.train.obtain import TrainedModel

_LISTED_KEYS = 5  # keys named in a mismatch message


class WeightsError(BadValueError):
    """A weights file is missing, unreadable, or does not fit the model it is loaded into."""


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (read with ``weights_only=True``).

    Raises:
        WeightsError: No such file, not a torch file, or not a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file '{path}': expected a file written by torch.save(model.state_dict(), PATH)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise WeightsError(f"'{path}' is not a readable torch state dict ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else 'no message'})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"'{path}' holds a {type(state).__name__}, expected a state dict (names -> tensors) "
                           f"as written by torch.save(model.state_dict(), PATH)")
    return dict(state)


def _mismatch(path: Path, spec: ModelSpec, expected: Mapping[str, torch.Tensor],
              given: Mapping[str, torch.Tensor]) -> str | None:
    """Why ``given`` does not fit a model whose state dict is ``expected``; ``None`` when it does."""
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    shapes = [f"{k}: model {tuple(expected[k].shape)}, file {tuple(given[k].shape)}"
              for k in expected if k in given and expected[k].shape != given[k].shape]
    problems = [f"{what} {items[:_LISTED_KEYS]}{' ...' if len(items) > _LISTED_KEYS else ''}"
                for what, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("shape mismatches", shapes)) if items]
    if not problems:
        return None
    return (f"'{path}' does not fit model '{spec.model}' with arguments {spec.model_kwargs}: {'; '.join(problems)}. "
            f"Pass the arguments the model was built with (e.g. --arg width=12)")


def load_weights(spec: ModelSpec, data: ImageData, path: Path | str, *, device: torch.device | str = "cpu",
                 evaluate_test: bool = True) -> TrainedModel:
    """Build the model of ``spec`` for ``data``, load the weights in ``path``, and evaluate it.

    Args:
        spec: Registry name and arguments of the model (its training fields are not used).
        data: The data set (channels and classes size the model; its test split is evaluated).
        path: The weights file.
        device: Where the model runs.
        evaluate_test: Compute per-image correctness on the test split.

    Returns:
        The model in eval mode, ``reused=True`` (nothing trained), ``checkpoint=path``.

    Raises:
        WeightsError: As :func:`read_state_dict`, or the weights do not fit the model.
        ModelContractError: The model does not map images to finite logits of the data's classes.
    """
    path = Path(path)
    state = read_state_dict(path)
    model = build_model(spec, data)
    problem = _mismatch(path, spec, model.state_dict(), state)
    if problem:
        raise WeightsError(problem)
    model.load_state_dict(state)
    model = model.to(device).eval()
    check_model_contract(model, data, name=spec.model, when=f"with the weights in '{path}'")
    start = time.perf_counter()
    correct = evaluate(model, data, device=device) if evaluate_test else None
    return TrainedModel(model, path, True, {"weights": str(path)}, correct, time.perf_counter() - start)
