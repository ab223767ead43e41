"""What the command line needs from a framework, and the frameworks it knows, by name.

The command line itself (options, checked files, the ``--out`` folder, report, comparisons and
conclusion) knows arrays only. Everything that touches a model goes through one
:class:`Framework`, which an adapter supplies as ``FRAMEWORK`` in the module named in
:data:`FRAMEWORKS`. ``--framework NAME`` picks it (default ``tf``); the module is imported when
the command runs, and it imports its framework (TensorFlow, PyTorch) only in
``import_framework``, so ``camavg --help`` and argument errors answer at once.
"""

from __future__ import annotations

import dataclasses
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from camavg_cli.loading import CommandError

# name -> (module holding FRAMEWORK, the install line that brings it). A PyTorch adapter adds
# "torch": ("camavg_torch.app.framework", "pip install 'camavg[torch]'") once it supplies one.
FRAMEWORKS = {
    "tf": ("camavg_tf.app.framework", "pip install 'camavg[tf,cli]'"),
}
DEFAULT_FRAMEWORK = "tf"


@dataclasses.dataclass(frozen=True)
class Framework:
    """One framework's part of the ``camavg`` command.

    Attributes:
        name: the framework in words, for the progress line ("importing TensorFlow").
        install: the pip line that installs what ``import_framework`` imports.
        model_kind: what ``--model`` holds, in words ("Keras model").
        model_suffix: the usual suffix of such a file (".keras"), for ``--help``.
        cam_library: the library the ``--method`` recipes call ("tf-keras-vis").
        cam_methods: the names ``--method`` takes.
        cam_classes: method name -> the full name of the class that makes its maps.
        recipe: ``recipe(method, layer, replace_to_linear, scorecam_max_n)`` -> an object whose
            ``describe()`` is one line saying how the maps are made (shown in ``--help``, the
            table and ``results.json``); the same object goes back to ``make_cams``.
        scorecam_max_n: the default of ``--scorecam-max-n``.
        import_framework: imports the framework (quietly); ModuleNotFoundError when missing.
        load_model: ``load_model(file, given)`` -> the model in ``file`` (``given``: the path as
            the user typed it); CommandError saying how to save a readable one.
        check_model_and_inputs: ``(model, inputs, given) -> number of output units``;
            CommandError when the inputs do not fit the model.
        predict: ``(model, inputs, batch_size) -> outputs`` as a NumPy array (for ``--top1``).
        check_layer: ``(model, layer)``; ValueError naming the layers a CAM can be taken at.
        target_score: ``(model, targets) -> score function`` of one target per sample.
        make_cams: ``(recipe, model, images, targets) -> (N, H, W)`` maps in [0, 1].
        averages_cam: ``(model, inputs, **options)`` -> the adapter's ``AveragesCam``
            (options: ``batch_size``, ``activation``, ``nan_policy``, ``normalize``).
        demo: the module of ``camavg demo`` (``REFERENCE_MAPS``, ``REFERENCE_RECIPES``, ``demo_metrics``,
            ``demo_recipes``, ``load_or_train``, ``demo_data``, ``reference_maps``), or None
            when the framework has no demo.
    """

    name: str
    install: str
    model_kind: str
    model_suffix: str
    cam_library: str
    cam_methods: tuple[str, ...]
    cam_classes: Mapping[str, str]
    recipe: Callable[..., Any]
    scorecam_max_n: int | None
    import_framework: Callable[[], None]
    load_model: Callable[[Path, str], Any]
    check_model_and_inputs: Callable[[Any, np.ndarray, str], int]
    predict: Callable[[Any, np.ndarray, int], np.ndarray]
    check_layer: Callable[[Any, str], None]
    target_score: Callable[[Any, np.ndarray], Callable]
    make_cams: Callable[[Any, Any, np.ndarray, np.ndarray], np.ndarray]
    averages_cam: Callable[..., Any]
    demo: Any = None


def get_framework(name: str = DEFAULT_FRAMEWORK) -> Framework:
    """The :class:`Framework` called ``name``; CommandError when it is unknown or not installed."""
    if name not in FRAMEWORKS:
        raise CommandError(f"--framework {name!r}: choose from {', '.join(FRAMEWORKS)}.")
    module, install = FRAMEWORKS[name]
    try:
        return import_module(module).FRAMEWORK
    except ModuleNotFoundError as error:
        if not module.startswith(f"{error.name}.") and module != error.name:
            raise
        raise CommandError(f"--framework {name}: {error.name} is not installed: {install}.") from None
