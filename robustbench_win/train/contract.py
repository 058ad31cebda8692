"""The model contract, checked once before a model is trained or evaluated.

Every model of the suite, built in or a plug-in, takes a batch of images ``(N, C, H, W)`` with
pixels in [0, 1] and returns one tensor of logits ``(N, classes)`` of the data set, finite. A
model that breaks this fails later in words that are not about the model: a tuple of outputs
stops the loss function with torch's own message, an extra logit is trained and attacked
without a word, and a non-finite output reads as a diverged training. :func:`check_model_contract`
sends a few training images through the model first and says what is wrong in the model's terms.
"""

from __future__ import annotations

import torch
from torch import nn

from robustbench_win.data.datasets import ImageData, to_float
from robustbench_win.errors import BadValueError

CONTRACT_IMAGES = 32  # training images sent through the model: one small batch, seconds at most on a CPU


class ModelContractError(BadValueError):
    """A model's output is not one finite tensor of logits of shape (N, classes of the data set)."""


def check_model_contract(model: nn.Module, data: ImageData, *, name: str, when: str = "before training") -> None:
    """Check that ``model`` maps a batch of ``data``'s images to finite logits ``(N, data.num_classes)``.

    The batch runs in eval mode without gradients on the model's device; the model's mode, its
    weights and buffers, and torch's random state are left as they were, so a run with the check
    trains exactly as one without it.

    Args:
        model: The model, untrained or with its weights loaded.
        data: The data set it is trained or evaluated on.
        name: The model's name, for the message.
        when: When the check runs, for the message (``"before training"``, ``"with weights in PATH"``).

    Raises:
        ModelContractError: The output is not a tensor, has another shape, is not floating point, or
            holds NaN or infinite values; the message says which and what is expected.
    """
    images = to_float(data.train_images[:CONTRACT_IMAGES])
    expected = (len(images), data.num_classes)
    output = _forward(model, images)
    what = f"model '{name}' ({when}), given {len(images)} training images of {data.display_name},"
    if not isinstance(output, torch.Tensor):
        raise ModelContractError(
            f"{what} returns a {type(output).__name__}; expected one tensor of logits of shape {expected}: return "
            f"only the logits from forward (e.g. `return logits`, not `return logits, features`)")
    if tuple(output.shape) != expected:
        raise ModelContractError(
            f"{what} returns logits of shape {tuple(output.shape)}; expected {expected}, one row per image and one "
            f"logit per class of the data set ({data.num_classes} classes): build the output layer from the "
            f"num_classes argument the model is given")
    if not output.is_floating_point():
        raise ModelContractError(f"{what} returns {output.dtype} values; expected floating-point logits")
    bad = int((~torch.isfinite(output)).any(dim=1).sum())
    if bad:
        cause = ("nothing has been trained yet, so the learning rate is not the cause" if when == "before training"
                 else "or the weights")
        raise ModelContractError(
            f"{what} returns NaN or infinite logits for {bad} of them; check its forward (a division by zero, the "
            f"log of zero, an uninitialised layer): {cause}")


def _forward(model: nn.Module, images: torch.Tensor) -> object:
    """``model(images)`` in eval mode, without gradients, leaving the mode and the random state as they were."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            return model(images.to(device))
    finally:
        model.train(training)
