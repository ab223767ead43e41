"""``AveragesCam`` for PyTorch models: the adapter that torchcam and pytorch-grad-cam users meet.

The engine (:mod:`camavg_core.engine`) owns the steps and the checks; this module supplies
PyTorch's part: copies on the inputs' device, the pass (masking, ``preprocess``, the model and
the activation, optionally ``torch.compile``-d) run under ``torch.inference_mode()`` with the
model in eval mode (every submodule's ``training`` flag restored afterwards), and the (N,) scores
back to the host. The model's last leaf module is recorded during the first pass: an
``nn.Linear`` whose output is the model's output means logits.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from camavg_core import validation
from camavg_core.backends import resolve_backend
from camavg_core.metrics import score_requirement
from camavg_core.engine import AveragesCamBase, Engine, Options, as_list, model_outputs
from camavg_core.masking import cam_maps
from camavg_core.perturbations import CAM_MASK, Perturbation, pixel_count, step_parameters
from camavg_torch.scores import as_score_function

_BACKEND = resolve_backend("torch")

# one lock per model: a pass sets eval mode and puts the training flags back, which two threads
# interleaving on the same model would get wrong
_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


@contextlib.contextmanager
def eval_mode(model: Any):
    """The model in eval mode, and every submodule's own ``training`` flag put back after."""
    if not isinstance(model, nn.Module):  # a function has no mode
        yield
        return
    with _LOCKS_LOCK:
        lock = _MODEL_LOCKS.setdefault(model, threading.RLock())
    with lock:
        flags = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            yield
        finally:
            for module, training in flags:
                module.training = training


def apply_activation(outputs: list, activation: str | None) -> list:
    """Each output in its score dtype (float32; float64 stays), then softmax or sigmoid."""
    outputs = [out if out.dtype == torch.float64 else out.float() for out in outputs]
    if activation == "softmax":
        return [torch.softmax(out, dim=-1) for out in outputs]
    if activation == "sigmoid":
        return [torch.sigmoid(out) for out in outputs]
    return outputs


#: leaves that leave values as they are in eval mode: a Linear before them still gives the output
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity, nn.Flatten, nn.Unflatten)


def _tensors_of(model: Any) -> list:
    return list(itertools.chain(model.parameters(), model.buffers())) if isinstance(model, nn.Module) else []


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and (
        a is b or (a.numel() == b.numel() and torch.equal(a.reshape(-1), b.reshape(-1)))
    )


class TorchAdapter:
    """PyTorch's part of the engine (see :class:`camavg_core.engine.Adapter`)."""

    backend = _BACKEND

    def __init__(self, model: Any, device: torch.device, compile: bool | dict) -> None:
        self.model, self.device, self.compile = model, device, compile
        floats = [t.dtype for t in _tensors_of(model) if t.is_floating_point()]
        self._model_dtype = str(floats[0]).removeprefix("torch.") if floats else None
        self._compiled: dict[tuple, Callable] = {}
        self._lock = threading.Lock()
        self._kind: str | None = None
        self.last_layer: str | None = None  # the last leaf module of the first pass, named

    def own(self, array: Any, dtype: str, name: str) -> torch.Tensor:
        if isinstance(array, torch.Tensor):
            return array.detach().to(device=self.device, dtype=getattr(torch, dtype), copy=True)
        try:
            host_dtype = np.dtype(dtype)
        except TypeError:  # bfloat16: NumPy's own dtypes do not hold it, torch converts
            host_dtype = np.dtype(np.float32)
        # from_numpy shares memory with the copy just made, which is ours alone
        return torch.from_numpy(np.array(array, dtype=host_dtype, copy=True)).to(device=self.device, dtype=getattr(torch, dtype))

    def input_dtype(self, index: int, dtype: np.dtype) -> str:
        """The dtype of the model's weights; without weights a float dtype stays, others float32."""
        if self._model_dtype is not None:
            return self._model_dtype
        return np.dtype(dtype).name if np.issubdtype(dtype, np.floating) else "float32"

    def run(self, inputs: list, cams: list | None, options: Options, batch_size: int,
            perturbation: Perturbation | None = None, extra: Any = None) -> list:
        n, parts = int(inputs[0].shape[0]), []
        if cams is None:
            with eval_mode(self.model), torch.inference_mode():
                for start in range(0, n, batch_size):
                    batch = [x[start : start + batch_size] for x in inputs]
                    with self._recording() if start == 0 else contextlib.nullcontext():
                        outputs = self._forward(options, batch)
                    if start == 0:
                        _check_output_rows(outputs, len(batch[0]))
                    parts.append(outputs)
            return [torch.cat(p) if len(p) > 1 else p[0] for p in zip(*parts)]
        perturbation = CAM_MASK if perturbation is None else perturbation
        parameters = step_parameters(perturbation, pixel_count(tuple(inputs[0].shape), options.data_format))
        step = self._step(options, perturbation)
        with eval_mode(self.model), torch.inference_mode():
            parameter_rows = torch.from_numpy(parameters).to(self.device)
            for start in range(0, n, batch_size):
                batch = [x[start : start + batch_size] for x in inputs]
                rows = () if extra is None else (extra[start : start + batch_size],)  # the per-sample data's rows
                prepared = [
                    perturbation.prepare(_BACKEND, x, cam_maps(x, c[start : start + batch_size], data_format=options.data_format,
                                                              normalize=options.normalize, backend=_BACKEND), *rows)
                    for x, c in zip(batch, cams)
                ]
                steps = [step(batch, prepared, row) for row in parameter_rows]  # one perturbed batch at a time
                if start == 0:
                    _check_output_rows(steps[0], len(batch[0]))
                parts.append([torch.stack(outputs) for outputs in zip(*steps)])
        return [torch.cat(p, dim=1) if len(p) > 1 else p[0] for p in zip(*parts)]

    def to_host(self, scores: Any) -> np.ndarray:
        scores = torch.as_tensor(scores)
        scores = scores if scores.dtype == torch.float64 else scores.float()
        return scores.detach().cpu().numpy().astype(np.float64)

    def output_kind(self) -> str | None:
        return self._kind

    def model_version(self) -> tuple | None:
        """A few float64 numbers that change when any parameter or buffer does: the tensor
        count, and the sums of the values, their squares and a position-weighted sum (a
        permutation within or across tensors moves it), reduced on the device."""
        tensors = _tensors_of(self.model)
        if not tensors:
            return None  # a plain callable: nothing to look inside
        device = tensors[0].device
        wide = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        with torch.inference_mode():
            totals = torch.zeros(3, dtype=wide, device=device)
            for index, tensor in enumerate(tensors, start=1):
                flat = tensor.detach().reshape(-1).to(wide)
                ramp = torch.linspace(1.0, 2.0, flat.numel(), dtype=wide, device=flat.device)
                sums = torch.stack([flat.sum(), (flat * flat).sum(), (flat * ramp).sum() * index])
                totals += sums.to(device)
        return (float(len(tensors)), *totals.tolist())

    # ----------------------------------------------------------------- the pass
    def _forward(self, options: Options, batch: list) -> list:
        if options.preprocess is not None:
            batch = [options.preprocess(x) for x in batch]
        return apply_activation(model_outputs(self.model(*batch), "The model"), options.activation)

    def _step(self, options: Options, perturbation: Perturbation) -> Callable:
        """One step of ``perturbation``: ``apply``, ``preprocess``, the model, the activation;
        ``torch.compile``-d when asked, once per options and perturbation key (the parameter
        row is a tensor argument: its values do not recompile)."""
        def step(batch: list, prepared: list, parameter: torch.Tensor) -> list:
            perturbed = [perturbation.apply(_BACKEND, x, ready, parameter) for x, ready in zip(batch, prepared)]
            return self._forward(options, perturbed)

        if not self.compile:
            return step
        with self._lock:  # compiled once per set of options and perturbation, for this AveragesCam only
            key = (options, perturbation.key)
            if key not in self._compiled:
                settings = self.compile if isinstance(self.compile, dict) else {}
                self._compiled[key] = torch.compile(step, **settings)
            return self._compiled[key]

    @contextlib.contextmanager
    def _recording(self):
        """Hooks on the leaf modules and the model for one forward: the last leaf that runs
        (pass-through leaves such as Dropout or Flatten after it aside), and whether the
        model's output is that leaf's output."""
        if not isinstance(self.model, nn.Module):
            yield
            return
        seen: dict = {}

        def leaf_hook(name: str) -> Callable:
            def hook(module, args, output):
                if not isinstance(module, _PASS_THROUGH):  # keeps one output alive, not all
                    seen["leaf"] = (name, module, output)
            return hook

        handles = [m.register_forward_hook(leaf_hook(name)) for name, m in self.model.named_modules()
                   if next(m.children(), None) is None]
        handles.append(self.model.register_forward_hook(lambda m, a, output: seen.setdefault("model", output)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        if "leaf" in seen and "model" in seen:
            name, module, output = seen["leaf"]
            is_output = any(_same(output, out) for out in as_list(seen["model"]))
            if is_output and isinstance(module, nn.Linear):
                self._kind = "logits"
                self.last_layer = f"{name!r} ({module!r})" if name else f"the model itself ({module!r})"
            elif is_output and isinstance(module, (nn.Softmax, nn.Sigmoid)):
                self._kind = "probabilities"


def _check_output_rows(outputs: list, batch_size: int) -> None:
    for out in outputs:
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != batch_size:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"model returned an output of shape {shape} for a batch of {batch_size} samples: "
                f"it must return one row per sample, shape (batch, ...), as a tensor (or a "
                f"tuple of tensors for several outputs)."
            )


class _TorchEngine(Engine):
    """The engine, with PyTorch's logits message and torchcam's list of CAMs."""

    def check_probability_outputs(self, metrics: tuple) -> None:
        needing, _ = score_requirement(metrics)
        if needing and self.options.activation is None and self.adapter.output_kind() == "logits":
            raise ValueError(validation.torch_logits(needing, self.adapter.last_layer))

    def own_cams(self, cams: Any, normalize: bool):
        # torchcam returns one (N, h, w) tensor per target layer: one is the CAM set
        if not self.options.multi_input and isinstance(cams, list) and cams and all(isinstance(c, torch.Tensor) for c in cams):
            if len(cams) > 1:
                raise ValueError(validation.torchcam_layers(len(cams)))
            cams = cams[0]
        return super().own_cams(cams, normalize)


def _device(inputs: Any, model: Any) -> torch.device:
    """The inputs' device when they are tensors, else the model's, else the CPU."""
    for array in as_list(inputs):
        if isinstance(array, torch.Tensor):
            return array.device
    tensors = _tensors_of(model)
    return tensors[0].device if tensors else torch.device("cpu")


class AveragesCam(AveragesCamBase):
    """Set of metrics that measure how a CAM's mask moves a PyTorch model's score.

    Args:
        model: an ``nn.Module`` (put in eval mode for each pass, its submodules' ``training``
            flags restored after) or any callable of a batch; a multi-input model is called
            ``model(*inputs)``. Its outputs are a tensor, or a tuple of tensors.
        inputs: ``torch.Tensor`` or NumPy array (N, C, H, W); a list of them for a multi-input
            model. The passes run on the inputs' device (a NumPy array goes to the model's).
        activation: ``'softmax'`` or ``'sigmoid'`` for a model that returns logits (most
            PyTorch classifiers: their last layer is an ``nn.Linear``, and Average Drop and
            Gain refuse them without an activation); ``'identity'`` to state that the outputs
            already are probabilities.
        data_format: ``'channels_first'`` (default, PyTorch's NCHW) or ``'channels_last'``.
        batch_size, nan_policy, normalize, level, preprocess: as for ``camavg_tf.AveragesCam``.
        compile: ``True`` (or a dict of ``torch.compile`` options) to compile the masked pass.

    ``score_function``: any ``outputs -> (N,)`` callable; a list with one pytorch-grad-cam
    target per sample (``[ClassifierOutputTarget(c) for c in labels]``), each applied to its
    own sample's output; or ``CategoricalScore(labels)``. ``cams``: (N, H, W) (or (N, h, w),
    resized) as pytorch-grad-cam returns them, or torchcam's list of one tensor per target
    layer when it holds one (fuse several with ``cam_extractor.fuse_cams(cams)``).

    >>> import numpy as np, torch
    >>> from camavg_torch import CategoricalScore
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 1, 1, 1], [-1, -1, -1, -1]]))
    ...     _ = model[1].bias.zero_()
    >>> images = torch.full((2, 1, 2, 2), 0.5)
    >>> metrics = AveragesCam(model, images, activation="softmax")
    >>> cams = np.stack([np.ones((2, 2)), np.zeros((2, 2))]).astype(np.float32)
    >>> result = metrics.evaluate(cams, CategoricalScore([0, 0]))
    >>> result.o_c.round(4).tolist()  # softmax([2, -2])[0] unmasked; softmax([0, 0])[0] masked out
    [0.982, 0.5]
    >>> round(result.average_drop, 2)  # (0 + (0.982 - 0.5) / 0.982) / 2
    24.54
    """

    def __init__(
        self,
        model: Any,
        inputs: Any,
        *,
        activation: str | None = None,
        data_format: str = "channels_first",
        batch_size: int | None = None,
        nan_policy: str = "raise",
        normalize: bool = False,
        preprocess: Callable | None = None,
        level: float = 0.95,
        compile: bool | dict = False,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable of a batch, got {type(model).__name__}.")
        self.model = model
        self.inputs = inputs
        options = Options(activation, data_format, normalize, validation.is_array_list(inputs), preprocess)
        self.adapter = TorchAdapter(model, _device(inputs, model), compile)
        self.engine = _TorchEngine(
            self.adapter, inputs, batch_size=batch_size, nan_policy=nan_policy, level=level, options=options,
        )

    def _score(self, score_function: Any) -> Any:
        return as_score_function(score_function, n=self.n, n_outputs=len(self.engine.outputs),
                                 activation=self.engine.options.activation)

    def _get_scores(self, cams: Any, score_function: Any, *, normalize: bool | None = None):
        return super()._get_scores(cams, self._score(score_function), normalize=normalize)

    def evaluate(self, cams: Any, score_function: Any, metrics: Any = None, *, normalize: bool | None = None):
        return super().evaluate(cams, self._score(score_function), metrics, normalize=normalize)
