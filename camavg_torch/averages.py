"""``AveragesCam`` for PyTorch models: the adapter that torchcam and pytorch-grad-cam users meet.

The engine (:mod:`camavg_core.engine`) owns the steps and the checks; this module supplies
PyTorch's part: copies on the inputs' device, the pass (optionally ``torch.compile``-d) under
``torch.inference_mode()`` with the model in eval mode (each submodule's ``training`` flag
restored after), the (N,) scores to the host, and what the model's last leaf module says of its
outputs (an ``nn.Linear``'s are logits), recorded during the first pass.
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
from camavg_core.engine import (AveragesCamBase, Engine, Options, apply_activation, as_list, check_output_rows, model_outputs,
                                prepare_batch)
from camavg_core.perturbations import (CAM_MASK, Perturbation, apply_group, pixel_count, step_groups, step_order,
                                       step_parameters)
from camavg_core.watch import SettingsReader, digest_of_sums
from camavg_torch.scores import as_score_function

_BACKEND = resolve_backend("torch")

# one lock per model: a pass sets eval mode and puts the training flags back, which two threads
# interleaving on the same model would get wrong
_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()

#: leaves that leave values as they are in eval mode: a Linear before them still gives the output
_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity, nn.Flatten, nn.Unflatten)

#: a module's attribute that is no setting of the function it computes: every pass sets eval mode
_NOT_SETTINGS = frozenset({"training"})


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """The model in eval mode, and every submodule's own ``training`` flag put back after."""
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


def _tensors_of(model: Any) -> list:
    return list(itertools.chain(model.parameters(), model.buffers())) if isinstance(model, nn.Module) else []


class TorchAdapter:
    """PyTorch's part of the engine (see :class:`camavg_core.engine.Adapter`)."""

    backend = _BACKEND

    def __init__(self, model: Any, device: torch.device, compile: bool | dict) -> None:
        self.model, self.device, self.compile = model, device, compile
        floats = [t.dtype for t in _tensors_of(model) if t.is_floating_point()]
        self._model_dtype = str(floats[0]).removeprefix("torch.") if floats else None
        self._compiled: dict[tuple, Callable] = {}  # torch.compile-d steps, for this AveragesCam only
        self._lock = threading.Lock()
        self._kind = self.last_layer = None  # what the last leaf module of the first pass says, and its name
        self._kept: list = []  # the modules the last version named (see model_version)
        self._settings = SettingsReader(_NOT_SETTINGS)

    def own(self, array: Any, dtype: str, name: str) -> torch.Tensor:
        if not isinstance(array, torch.Tensor):
            # a host copy of our own (from_numpy shares its memory); float32 where NumPy lacks the type
            host = np.float32 if dtype == "bfloat16" or dtype.startswith("float8") else dtype
            array = torch.from_numpy(np.array(array, dtype=host, copy=True))
            return array.to(device=self.device, dtype=getattr(torch, dtype))
        return array.detach().to(device=self.device, dtype=getattr(torch, dtype), copy=True)

    def input_dtype(self, index: int, dtype: np.dtype) -> str:
        """The dtype of the model's weights; without weights a float dtype stays, others float32."""
        return self._model_dtype or (np.dtype(dtype).name if np.issubdtype(dtype, np.floating) else "float32")

    def run(self, inputs: list, cams: list | None, options: Options, batch_size: int,
            perturbation: Perturbation | None = None, extra: Any = None) -> list:
        """One eager loop over the batches; with ``cams``, ``prepare`` once per batch and then
        the K steps group by group (:func:`~camavg_core.perturbations.step_groups`; one step
        per group unless the perturbation groups them), one group's perturbed batches at a time."""
        perturbation = CAM_MASK if perturbation is None else perturbation
        if cams is not None:
            parameters = step_parameters(perturbation, pixel_count(tuple(inputs[0].shape), options.data_format))
            groups = step_groups(perturbation, parameters)
            in_step_order = step_order(groups)
            group_rows = [torch.from_numpy(parameters[group]).to(self.device) for group in groups]
            group_step = self._step(options, perturbation)
        parts = []
        with eval_mode(self.model) if isinstance(self.model, nn.Module) else contextlib.nullcontext(), torch.inference_mode():
            for start in range(0, int(inputs[0].shape[0]), batch_size):
                batch = [x[start : start + batch_size] for x in inputs]
                if cams is None:
                    with self._recording() if start == 0 and isinstance(self.model, nn.Module) else contextlib.nullcontext():
                        steps = [self._forward(options, batch)]
                else:
                    rows = () if extra is None else (extra[start : start + batch_size],)  # the per-sample data's
                    prepared = prepare_batch(_BACKEND, perturbation, options, batch, [c[start : start + batch_size] for c in cams], rows)
                    steps = [out for rows in group_rows for out in group_step(batch, prepared, rows)]
                    steps = [steps[place] for place in in_step_order]
                if start == 0:
                    check_output_rows(steps[0], len(batch[0]), "The model")
                parts.append([torch.stack(outputs) for outputs in zip(*steps)])
        outputs = [torch.cat(p, dim=1) if len(p) > 1 else p[0] for p in zip(*parts)]
        return outputs if cams is not None else [out[0] for out in outputs]

    def to_host(self, scores: Any) -> np.ndarray:
        return _BACKEND.to_numpy(torch.as_tensor(scores)).astype(np.float64)

    def output_kind(self) -> str | None:
        return self._kind

    def logits_message(self, metrics: Any) -> str:
        return validation.torch_logits(metrics, self.last_layer)

    def model_version(self) -> tuple | None:
        """``(structure, sums)``. The structure: each module's identity, and its plain settings
        (:class:`camavg_core.watch.SettingsReader`: a temperature, a slope, a kernel size; not the
        ``training`` flag, which every pass sets), so that a module swapped for another (a
        ReLU for a Tanh, a pool for another) or a setting changed counts as a new model. The
        sums: the tensor count, and float64 sums of the values, their squares and their values
        by position (a permutation within or across tensors moves it), reduced on the device
        over all the weights at once: a handful of kernels, where some per tensor cost a
        ResNet's hundreds of small buffers more than the sums (on a busy machine, 10% of a
        pass). None for a plain callable, whose insides are out of sight."""
        if not isinstance(self.model, nn.Module):
            return None  # a plain callable: nothing to look inside
        modules = list(self.model.modules())
        with self._lock:
            self._kept = modules  # the modules of the last structure, so that no id is reused
        structure = (tuple(map(id, modules)), self._settings(modules))
        return structure, self._weight_sums()

    def model_digest(self) -> str | None:
        """The weights' sums to 9 significant digits, as text: the same in another process
        (the modules' identities are not), for a stream's resume."""
        return None if not isinstance(self.model, nn.Module) else digest_of_sums(self._weight_sums())

    def _weight_sums(self) -> tuple:
        tensors = _tensors_of(self.model)
        if not tensors:
            return (0.0,)
        device = tensors[0].device
        wide = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        with torch.inference_mode():
            flat = torch.cat([t.detach().reshape(-1).to(device) for t in tensors])  # one copy, dtypes promoted
            totals = torch.zeros(3, dtype=wide, device=device)
            for start in range(0, flat.numel(), 1 << 24):  # in float64 by chunks: bounded memory
                part = flat[start : start + (1 << 24)].to(wide)
                places = torch.arange(start + 1, start + 1 + part.numel(), dtype=wide, device=device)
                totals += torch.stack([part.sum(), part.dot(part), part.dot(places)])
        return (float(len(tensors)), *totals.tolist())

    # ----------------------------------------------------------------- the pass
    def _forward(self, options: Options, batch: list) -> list:
        if options.preprocess is not None:
            batch = [options.preprocess(x) for x in batch]
        return apply_activation(model_outputs(self.model(*batch), "The model"), options.activation, _BACKEND)

    def _step(self, options: Options, perturbation: Perturbation) -> Callable:
        """One group of S steps of ``perturbation``: ``apply_group``, then per step
        ``preprocess``, the model, the activation, the S outputs in the order of the (S, P)
        rows; ``torch.compile``-d when asked, once per options and perturbation key (the rows
        are a tensor argument: their values do not recompile)."""
        def step(batch: list, prepared: list, rows: torch.Tensor) -> list:
            per_input = [apply_group(perturbation, _BACKEND, x, ready, rows) for x, ready in zip(batch, prepared)]
            return [self._forward(options, [batches[place] for batches in per_input]) for place in range(rows.shape[0])]

        if not self.compile:
            return step
        with self._lock:
            key = (options, perturbation.key)
            if key not in self._compiled:
                self._compiled[key] = torch.compile(step, **(self.compile if isinstance(self.compile, dict) else {}))
            return self._compiled[key]

    @contextlib.contextmanager
    def _recording(self):
        """Hooks on the leaf modules and the model for one forward: the last leaf that runs
        (pass-through leaves such as Dropout or Flatten after it aside), and whether the
        model's output is that leaf's output: an ``nn.Linear``'s means logits."""
        seen: dict = {}

        def leaf_hook(module, args, output):
            if not isinstance(module, _PASS_THROUGH):  # keeps one output alive, not all
                seen["leaf"] = (module, output)

        handles = [m.register_forward_hook(leaf_hook) for m in self.model.modules() if next(m.children(), None) is None]
        handles.append(self.model.register_forward_hook(lambda m, a, output: seen.setdefault("model", output)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        module, output = seen.get("leaf", (None, None))
        # the same values, also when pass-through leaves reshaped them
        if not isinstance(output, torch.Tensor) or not any(
                isinstance(out, torch.Tensor) and torch.equal(output.reshape(-1), out.reshape(-1)) for out in as_list(seen.get("model"))):
            return
        if isinstance(module, nn.Linear):
            name = next(name for name, m in self.model.named_modules() if m is module)
            self._kind = "logits"
            self.last_layer = f"{name!r} ({module!r})" if name else f"the model itself ({module!r})"
        elif isinstance(module, (nn.Softmax, nn.Sigmoid)):
            self._kind = "probabilities"


class AveragesCam(AveragesCamBase):
    """Set of metrics that measure how a CAM's mask moves a PyTorch model's score.

    Args:
        model: an ``nn.Module`` (in eval mode for each pass, its submodules' ``training`` flags
            restored after) or any callable of a batch, called ``model(*inputs)``; it returns
            a tensor, or a tuple of tensors.
        inputs: ``torch.Tensor`` or NumPy array (N, C, H, W); a list of them for a multi-input
            model. The passes run on the inputs' device (a NumPy array goes to the model's).
        activation: ``'softmax'`` or ``'sigmoid'`` for logits (a last ``nn.Linear``: Average
            Drop and Gain refuse it without one); ``'identity'``: the outputs are probabilities.
        data_format: ``'channels_first'`` (default, PyTorch's NCHW) or ``'channels_last'``.
        batch_size, nan_policy, normalize, level, preprocess: as for ``camavg_tf.AveragesCam``.
        compile: ``True`` (or a dict of ``torch.compile`` options) to compile the masked pass.

    ``score_function``: any ``outputs -> (N,)`` callable; a list with one pytorch-grad-cam
    target per sample, each applied to its own sample's output; or ``CategoricalScore(labels)``.
    ``cams``: (N, H, W) (or (N, h, w), resized) as pytorch-grad-cam returns them, or torchcam's
    list of one tensor per target layer when it holds one (fuse several with ``fuse_cams``).

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

    def __init__(self, model: Any, inputs: Any, *, activation: str | None = None, data_format: str = "channels_first",
                 batch_size: int | None = None, nan_policy: str = "raise", normalize: bool = False,
                 preprocess: Callable | None = None, level: float = 0.95, compile: bool | dict = False) -> None:
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable of a batch, got {type(model).__name__}.")
        self.model, self.inputs = model, inputs
        # the inputs' device when they are tensors, else the model's, else the CPU
        tensors = [x for x in as_list(inputs) if isinstance(x, torch.Tensor)] or _tensors_of(model)
        self.adapter = TorchAdapter(model, tensors[0].device if tensors else torch.device("cpu"), compile)
        options = Options(activation, data_format, normalize, validation.is_array_list(inputs), preprocess)
        self.engine = Engine(self.adapter, inputs, batch_size=batch_size, nan_policy=nan_policy, level=level, options=options)

    def _engine_arguments(self, cams: Any, score_function: Any) -> tuple[Any, Any]:
        score_function = as_score_function(score_function, n=self.n, n_outputs=len(self.engine.outputs),
                                           activation=self.engine.options.activation)
        # torchcam returns one (N, h, w) tensor per target layer: one is the CAM set
        if not self.engine.options.multi_input and isinstance(cams, list) and cams and all(isinstance(c, torch.Tensor) for c in cams):
            if len(cams) > 1:
                raise ValueError(validation.torchcam_layers(len(cams)))
            cams = cams[0]
        return cams, score_function
