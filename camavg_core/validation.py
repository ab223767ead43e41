"""Every check camavg makes on user input, and every message it raises, in one place.

A message names the argument, what was seen, and the fix. Checks need concrete values: they run
outside compiled functions (``jax.jit``, ``tf.function``) on the small vectors or on reductions
of the large arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NAN_POLICIES = ("raise", "omit")
#: How far outside [0, 1] a CAM value may stray through float rounding before it is an error.
CAM_RANGE_TOLERANCE = 1e-3


def describe(x: Any) -> str:
    """A short account of a value for a message: its type, and shape and dtype for arrays."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    kind = type(x).__name__
    if shape is not None:
        return f"{kind} of shape {tuple(shape)} and dtype {dtype}"
    return kind


# --------------------------------------------------------------------------- messages
def bad_backend_type(backend: Any) -> str:
    return (
        f"backend must be a name ('numpy', 'tensorflow', 'jax') or a camavg Backend, "
        f"got {type(backend).__name__}."
    )


def unknown_backend(name: str, known: list[str]) -> str:
    return f"backend={name!r} is not known; use one of {known}."


def unknown_array_type(array: Any) -> str:
    return (
        f"camavg has no backend for arrays of type {type(array).__module__}."
        f"{type(array).__name__}. Pass a NumPy array, a tf.Tensor or a jax.Array "
        f"(import the framework before calling camavg)."
    )


def traced_check(argument: str) -> str:
    return (
        f"{argument} is being traced (inside jax.jit or tf.function), so nan_policy='raise' "
        f"cannot look at its values. Check the data before the compiled function, or pass "
        f"nan_policy='omit' to skip and count non-finite samples inside it."
    )


#: ml_dtypes' floats (TensorFlow's and JAX's bfloat16 in NumPy) have NumPy kind 'V'
EXTENSION_FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3b11fnuz")


def is_real_dtype(dtype: Any) -> bool:
    """bool, integers, floats, and ml_dtypes' extension floats such as bfloat16."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        return False
    return dtype.kind in "biuf" or dtype.name in EXTENSION_FLOATS


def is_integer(value: Any) -> bool:
    """A Python or NumPy integer, not a bool (True would pass as 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """A Python or NumPy integer or float, not a bool (an argument's scalar, before its range)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


# --------------------------------------------------------------------------- checks
#: None: the outputs as the model gives them; "identity": the same, stated explicitly (the
#: outputs already are probabilities although the output layer is linear)
ACTIVATIONS = (None, "softmax", "sigmoid", "identity")
DATA_FORMATS = ("channels_last", "channels_first")


def check_level(level: Any) -> float:
    """The confidence level as a float in (0, 1), or a ValueError/TypeError saying so."""
    if not is_number(level):
        raise TypeError(f"level must be a number such as 0.95, got {type(level).__name__}.")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(
            f"level must be a confidence level strictly between 0 and 1 (0.95 for 95%), "
            f"got {level!r}."
        )
    return level


def check_options(
    *,
    activation: Any = None,
    nan_policy: str = "raise",
    data_format: str = "channels_last",
    level: Any = 0.95,
    normalize: Any = False,
    batch_size: Any = None,
    preprocess: Any = None,
) -> None:
    """The options every adapter and every stream take, checked in one place."""
    check_nan_policy(nan_policy)
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {ACTIVATIONS}, got {activation!r}: use 'softmax' "
            f"for a model that returns class logits, 'sigmoid' for a binary logit, 'identity' "
            f"when the outputs already are probabilities."
        )
    if preprocess is not None and not callable(preprocess):
        raise TypeError(
            f"preprocess must be a function applied to the masked inputs inside the compiled "
            f"pass (e.g. keras.applications.mobilenet_v2.preprocess_input), got "
            f"{type(preprocess).__name__}."
        )
    if batch_size is not None and (not is_integer(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}.")
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}.")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be True or False, got {normalize!r}.")
    check_level(level)


def check_nan_policy(nan_policy: str) -> None:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}.")


def check_score_dtype(dtype: Any, argument: str) -> None:
    """Scores are real numbers: bool, integers, floats (bfloat16 too); a TypeError otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"{argument} must hold real numbers, got dtype {dtype}.")
    if not is_real_dtype(dtype):
        raise TypeError(f"{argument} must hold numbers, got an array of dtype {dtype}.")


def check_score_shape(shape: tuple, argument: str) -> None:
    """One score per sample: (N,), or a column (N, 1) as a single-output model gives it."""
    shape = tuple(shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(
            f"{argument} must be a vector of one score per sample, shape (N,), got shape {shape}."
        )


def as_score_vector(values: Any, argument: str) -> np.ndarray:
    """A 1-D float array of scores from whatever the user gave, or a clear error."""
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"{argument} must be an array of scores, got {type(values).__name__}.")
    try:
        array = np.asarray(values)
    except Exception as exc:  # e.g. a ragged list
        raise ValueError(f"{argument} could not be read as an array of scores: {exc}") from exc
    check_score_dtype(array.dtype, argument)
    if array.dtype.name in EXTENSION_FLOATS:
        array = array.astype(np.float32)
    check_score_shape(array.shape, argument)
    return array.reshape(-1) if array.ndim == 2 else array


def pair_length_message(n_y: Any, n_o: Any, names: tuple[str, str] = ("Y_c", "O_c")) -> str:
    """The text of :func:`check_pair`'s error; counts None for a graph assertion, which
    reports the values itself."""
    seen = (
        f"{names[0]} and {names[1]} hold different numbers of scores" if n_y is None
        else f"{names[0]} has {n_y} scores but {names[1]} has {n_o}"
    )
    return f"{seen}: both must hold one score per sample, for the same samples in the same order."


def check_pair(y_c: Any, o_c: Any, names: tuple[str, str] = ("Y_c", "O_c")) -> None:
    """Y_c and O_c: same number of samples, at least one."""
    n_y, n_o = int(y_c.shape[0]), int(o_c.shape[0])
    if n_y != n_o:
        raise ValueError(pair_length_message(n_y, n_o, names))
    if n_y == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty: there is no sample to average over.")


def first_nonfinite(values: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad[0]) if bad.size else None


def check_finite(values: np.ndarray, argument: str, nan_policy: str) -> None:
    """Under nan_policy='raise', name the first non-finite sample."""
    if nan_policy != "raise":
        return
    index = first_nonfinite(values)
    if index is not None:
        raise ValueError(
            f"{argument}[{index}] is {values[index]} (not finite). Fix the sample, or pass "
            f"nan_policy='omit' to skip non-finite samples and count them in `skipped`."
        )


def check_finite_samples(finite_rows: Any, argument: str, nan_policy: str, *, hint: str = "Fix the sample") -> np.ndarray:
    """(N,) flags of samples whose ``argument`` holds NaN or infinity; an error under 'raise'.

    ``finite_rows`` comes from a reduction where the data lives: one boolean per sample.
    """
    nonfinite = ~np.asarray(finite_rows, dtype=bool)
    if nan_policy == "raise" and nonfinite.any():
        raise ValueError(
            f"{argument}[{int(np.flatnonzero(nonfinite)[0])}] holds NaN or infinity. {hint}, or "
            f"pass nan_policy='omit' to skip non-finite samples and count them in `skipped`."
        )
    return nonfinite


def metrics_phrase(metrics: Any) -> tuple[str, str]:
    """The titles of ``metrics`` (descriptions with a ``title``, or one title as a string) as
    one phrase, and the verb that agrees with it.

    >>> metrics_phrase("Average Gain")
    ('Average Gain', 'needs')
    """
    titles = [metrics] if isinstance(metrics, str) else [m.title for m in metrics]
    phrase = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
    return phrase, "needs" if len(titles) == 1 else "need"


def check_probabilities(scores: np.ndarray, metrics: Any, *, upper: bool, argument: str = "Y_c") -> None:
    """Drop needs scores >= 0, gain needs 0 <= score <= 1: otherwise the model returns logits.
    ``metrics``: the descriptions that need it (or one metric's title).

    Exact bounds, no tolerance: a softmax or sigmoid in any float format never leaves [0, 1].
    """
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return
    low, high = float(finite.min()), float(finite.max())
    if low < 0 or (upper and high > 1):
        # enough digits that a value a hair above 1 does not read as 1
        seen = f"{low:.8g}" if low < 0 else f"{high:.8g}"
        raise ValueError(probabilities_message(metrics, argument, seen, upper=upper))


def check_cam_range(low: float, high: float, argument: str = "cams") -> None:
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            f"{argument} holds non-finite values (min {low}, max {high}). A degenerate CAM "
            f"(for example 0/0 in its normalisation) gives NaN: replace them, e.g. with "
            f"np.nan_to_num(cams), or pass nan_policy='omit' to skip those samples."
        )
    if low < -CAM_RANGE_TOLERANCE or high > 1 + CAM_RANGE_TOLERANCE:
        raise ValueError(
            f"{argument} must lie in [0, 1], but its values span [{low:.4g}, {high:.4g}]. "
            f"Normalise each CAM (tf-keras-vis does so by default), or pass normalize=True "
            f"for a per-sample min-max normalisation."
        )


class RoadNoiseWarning(UserWarning):
    """ROAD's default noise (0.01, the original's for [0, 1] pixels) on inputs outside [0, 1]:
    ``warnings.filterwarnings("ignore", category=RoadNoiseWarning)`` keeps it silently."""


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """A warning (``UserWarning`` unless told) attributed to the first caller outside camavg
    (the user's own line), however deep inside camavg it is raised."""
    import sys
    import warnings

    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the frame that called warn()
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _CAMAVG_PACKAGES:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)


_CAMAVG_PACKAGES = ("camavg_core", "camavg_tf", "camavg_jax", "camavg_torch")


#: A CAM set whose largest value is positive but below this was almost surely not normalised.
FAINT_CAMS = 0.01


def faint_cams(high: float) -> str:
    return (
        f"Every CAM value is below {high:.3g}: masking with these maps blacks out nearly every "
        f"pixel, so the metrics measure almost-black images. The maps look unnormalised (e.g. "
        f"tf-keras-vis with normalize_cam=False): pass normalize=True to min-max each map, or "
        f"normalise them yourself."
    )


def check_count(n_inputs: int, n_cams: int) -> None:
    if n_inputs != n_cams:
        raise ValueError(
            f"cams holds {n_cams} maps but inputs holds {n_inputs} samples: pass one CAM per "
            f"input sample, in the same order."
        )


def check_same_count(counts: list[int]) -> None:
    """Every model input holds the same number of samples."""
    if len(set(counts)) > 1:
        raise ValueError(
            f"inputs hold different numbers of samples {sorted(set(counts))}: each model input "
            f"needs the same N."
        )


def is_array_list(value: Any) -> bool:
    """Whether ``value`` is a list (or tuple) of arrays, one per model input, as opposed to a
    nested list of numbers, which is one array.

    >>> import numpy as np
    >>> is_array_list([np.zeros((2, 3)), np.zeros((2, 4))]), is_array_list([[0.5, 0.5], [1.0, 0.0]])
    (True, False)
    """
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(hasattr(item, "shape") and hasattr(item, "dtype") for item in value)
    )


def cams_per_input(cams: Any, n_inputs: int, multi_input: bool) -> list:
    """The CAM arrays as a list with one per model input, or a clear error.

    A single-input model takes one CAM array; a multi-input model a list with one CAM array
    per input, as tf-keras-vis returns them.

    >>> cams_per_input([1, 2], 2, True)
    [1, 2]
    """
    if not multi_input and isinstance(cams, (list, tuple)) and not is_array_list(cams):
        return [cams]  # a nested list of numbers: one CAM array
    if multi_input != isinstance(cams, (list, tuple)):
        if multi_input:
            raise ValueError(
                f"The model has {n_inputs} inputs, so cams must be a list with one CAM array "
                f"per input (as tf-keras-vis returns them), got a single array."
            )
        raise ValueError(
            "cams is a list but the model has a single input: pass one array of shape "
            "(N, H, W) (a multi-input model takes a list with one CAM array per input)."
        )
    cam_list = list(cams) if isinstance(cams, (list, tuple)) else [cams]
    if len(cam_list) != n_inputs:
        raise ValueError(
            f"cams holds {len(cam_list)} CAM arrays for a model with {n_inputs} inputs: pass "
            f"one per input."
        )
    return cam_list


def linear_output_layer(metrics: Any) -> str:
    metric, verb = metrics_phrase(metrics)
    return (
        f"{metric} {verb} scores that are probabilities, but the model's output layer has a "
        f"linear activation: its outputs are logits, whatever values they take. Pass "
        f"activation='softmax' (class logits) or 'sigmoid' (a binary logit), or "
        f"activation='identity' if the outputs already are probabilities."
    )


def summed_scores_above_one(metrics: Any, n_functions: int, high: float) -> str:
    metric, verb = metrics_phrase(metrics)
    return (
        f"{metric} {verb} scores that are probabilities, but score_function is a list of "
        f"{n_functions} score functions, one per model output, whose scores camavg sums (as "
        f"tf-keras-vis does), and the sum reaches {high:.4g} here. Score fewer outputs (pass a "
        f"model with only the output to score, or one score function on it), or use "
        f"average_increase, which takes any score."
    )


def increase_on_logits() -> str:
    return (
        "The model's output layer has a linear activation (logits): Average Increase is "
        "defined on any score, but its value depends on the activation (a softmax couples "
        "the classes). Pass activation='softmax' or 'sigmoid' to measure it on probabilities, "
        "or activation='identity' to keep the outputs as they are and silence this warning."
    )


def check_nonempty(n: int, argument: str = "inputs") -> None:
    if n == 0:
        raise ValueError(f"{argument} is empty: there is no sample to evaluate.")


def check_scores_shape(scores_shape: tuple, n: int, where: str = "score_function") -> None:
    shape = tuple(scores_shape)
    if not (shape == (n,) or shape == (n, 1)):
        raise ValueError(
            f"{where} must return one score per sample, shape ({n},), but returned shape "
            f"{shape}. A tf-keras-vis CategoricalScore needs one index, or one per sample; "
            f"a custom score function maps the outputs of all N samples to N scores."
        )


def check_scores_finite(scores: np.ndarray, where: str, nan_policy: str) -> None:
    if nan_policy != "raise":
        return
    index = first_nonfinite(scores)
    if index is not None:
        raise ValueError(
            f"{where} gave a non-finite score ({scores[index]}) for sample {index}. Check the "
            f"model and the inputs for NaN, or pass nan_policy='omit' to skip such samples."
        )


# --------------------------------------------------------------------------- messages for traced checks
def probabilities_message(metrics: Any, argument: str, seen: str, *, upper: bool) -> str:
    """The text of :func:`check_probabilities`'s error, for checks that cannot format the value
    they saw (graph assertions inside ``tf.function``): ``seen`` says what was found.

    >>> probabilities_message("Average Gain", "O_c", "a value > 1", upper=True)[:60]
    'Average Gain needs scores that are probabilities, but O_c ho'
    """
    bound = "[0, 1]" if upper else ">= 0"
    metric, verb = metrics_phrase(metrics)
    return (
        f"{metric} {verb} scores that are probabilities, but {argument} holds {seen} (must be "
        f"{bound}): the model seems to return logits. Pass activation='softmax' (or "
        f"'sigmoid' for a single binary output), or add that activation to the model."
    )


def nonfinite_message(argument: str) -> str:
    """The text of :func:`check_finite_samples`'s error without the sample index (for graph
    assertions, which report the values themselves)."""
    return (
        f"{argument} holds NaN or infinity. Fix the sample, or pass nan_policy='omit' to skip "
        f"non-finite samples and count them in `skipped`."
    )


# --------------------------------------------------------------------------- the model and the
# layout: what would otherwise be read silently the wrong way
def activation_applied_twice(activation: str, layer: str, layer_activation: str) -> str:
    return (
        f"activation={activation!r} would apply a {activation} to outputs that already are "
        f"probabilities: the model's output layer {layer!r} ends in a {layer_activation}. Pass "
        f"activation=None (or 'identity') to score its outputs as they are; to score logits "
        f"through your own activation, give a model whose output layer is linear."
    )


def cams_look_channels_first(map_shape: tuple, x_shape: tuple) -> str:
    return (
        f"cams of spatial shape {map_shape} match axes 2 and 3 of the inputs (shape {x_shape}), "
        f"not axes 1 and 2, which data_format='channels_last' (the default) reads as height and "
        f"width: the inputs look channels-first, (N, C, H, W). Pass data_format=\"channels_first\"; "
        f"if the maps really are of another size, resize them to {tuple(x_shape[1:3])} yourself."
    )


def cams_look_channels_last(map_shape: tuple, x_shape: tuple) -> str:
    return (
        f"cams of spatial shape {map_shape} match axes 1 and 2 of the inputs (shape {x_shape}), "
        f"not axes 2 and 3, which data_format='channels_first' reads as height and width: the "
        f"inputs look channels-last, (N, H, W, C). Pass data_format=\"channels_last\"; if the "
        f"maps really are of another size, resize them to {tuple(x_shape[2:4])} yourself."
    )


def inputs_look_other_layout(map_shape: tuple, x_shape: tuple, data_format: str) -> str:
    if data_format == "channels_last":
        return (
            f"the inputs (shape {x_shape}) look channels-first, (N, C, H, W): "
            f"data_format='channels_last' (the default) reads them as {x_shape[1]} x {x_shape[2]} "
            f"pixels of {x_shape[3]} channels, and cams of spatial shape {map_shape} would be "
            f"stretched to {x_shape[1]} x {x_shape[2]}. Pass data_format=\"channels_first\" (or "
            f"transpose the inputs to (N, H, W, C)); if the inputs really are {x_shape[1]} pixels "
            f"high, pass cams of spatial shape {tuple(x_shape[1:3])}."
        )
    return (
        f"the inputs (shape {x_shape}) look channels-last, (N, H, W, C): "
        f"data_format='channels_first' reads them as {x_shape[2]} x {x_shape[3]} pixels of "
        f"{x_shape[1]} channels, and cams of spatial shape {map_shape} would be stretched to "
        f"{x_shape[2]} x {x_shape[3]}. Pass data_format=\"channels_last\" (or transpose the inputs "
        f"to (N, C, H, W)); if the inputs really are {x_shape[3]} pixels wide, pass cams of "
        f"spatial shape {tuple(x_shape[2:4])}."
    )


def cams_transposed(map_shape: tuple, spatial: tuple) -> str:
    return (
        f"cams of spatial shape {map_shape} are the inputs' spatial shape {spatial} transposed: "
        f"resizing them would stretch each map along the other axis. Pass (N, {spatial[0]}, "
        f"{spatial[1]}) maps (np.swapaxes(cams, 1, 2) if they are transposed); if they really "
        f"are {map_shape[0]}x{map_shape[1]} maps, resize them to {spatial} yourself."
    )


def not_one_row_per_sample(argument: str, seen: Any, batch_size: int) -> str:
    """A pass whose output is not (batch, ...): ``seen`` is the output's shape or type name."""
    return (
        f"{argument} returned an output of shape {seen} for a batch of {batch_size} samples: it "
        f"must return one row per sample, shape (batch, ...), as an array (or a list or tuple of "
        f"arrays for several outputs)."
    )


def outputs_are_a_dict(argument: str, keys: list) -> str:
    first = keys[0] if keys else "name"
    return (
        f"{argument} returned a dict (keys {keys}): camavg scores an array, or a list of arrays "
        f"(one per output, in order, scored by a list of score functions). Wrap it to return "
        f"the output you score, e.g. lambda x: model(x)[{first!r}], or a list of the outputs "
        f"[out[k] for k in {keys}]."
    )


# --------------------------------------------------------------------------- PyTorch (camavg_torch)
def torch_logits(metrics: Any, layer: str) -> str:
    """Drop or gain on an ``nn.Module`` whose output is its last ``nn.Linear``'s output."""
    metric, verb = metrics_phrase(metrics)
    return (
        f"{metric} {verb} scores that are probabilities, but the model's output comes straight "
        f"from its last layer, {layer}, with no softmax or sigmoid after it: its outputs are "
        f"logits (pytorch-grad-cam's ClassifierOutputTarget and torchcam score them as they "
        f"are). Pass activation='softmax' (class logits) or 'sigmoid' (a binary logit) to "
        f"AveragesCam, and score with ClassifierOutputTarget or CategoricalScore(labels); or "
        f"activation='identity' if the outputs already are probabilities."
    )


def torch_double_softmax() -> str:
    return (
        "score_function holds ClassifierOutputSoftmaxTarget, which takes the softmax itself, "
        "and activation='softmax' takes it again: softmax(softmax(z)) is no probability of the "
        "model. Score with ClassifierOutputTarget(c) (or CategoricalScore(labels)) and keep "
        "activation='softmax'."
    )


def torch_labels_as_score(n: int) -> str:
    return (
        f"score_function is a list of {n} numbers, not score functions: for class labels, wrap "
        f"them in camavg_torch.CategoricalScore(labels), or pass pytorch-grad-cam targets "
        f"[ClassifierOutputTarget(c) for c in labels]."
    )


def torch_target_shape(index: int, shape: tuple) -> str:
    return (
        f"score_function[{index}] returned shape {shape} for sample {index}: a per-sample target "
        f"(as pytorch-grad-cam's ClassifierOutputTarget) maps one sample's output to one score."
    )


def torchcam_layers(n: int) -> str:
    return (
        f"cams is a list of {n} CAM tensors, as torchcam returns one per target layer, but "
        f"camavg measures one CAM per sample: fuse them (cam_extractor.fuse_cams(cams)) or pick "
        f"one layer's (cams[0])."
    )


# ----------------------------------------------------------------------------- resuming a stream
_RESUME_FROM_START = (
    "Resume with a source that starts again from the first batch and gives the same batches in "
    "the same order: re-create the generator (call the generator function again), or pass the "
    "list, Dataset or other re-iterable itself rather than an iterator over it."
)


def resume_keep_vectors_changed(was: bool, now: bool) -> str:
    return (
        f"resume: the stopped stream ran with keep_vectors={was}, this call has keep_vectors={now}: "
        f"the checkpoint {'holds' if was else 'does not hold'} the score vectors of its counted "
        f"batches, so the result would mix {'' if was else 'missing '}vectors and sums. Resume with "
        f"keep_vectors={was}, or start again without resume= to change it."
    )


def resume_other_run() -> str:
    return (
        "resume: the checkpoint is of a run that measured something else: other metrics or "
        "metric settings (steps, fractions, noise, seed), other pass options (activation, "
        "normalize, data_format, preprocess), another nan_policy, or a model with other "
        "weights. Its sums would be added to this run's. Resume with the stopped run's model and "
        "arguments, or start again without resume=."
    )


def resume_other_batches(batches: int, counted: int, rows: int) -> str:
    return (
        f"resume: the stopped run counted {counted} samples in its first {batches} batches, and the "
        f"source's first {batches} batches hold {rows}: it is cut into other batch sizes, so some "
        f"samples would be counted twice or never. Resume with the batches of the stopped run, or "
        f"start again without resume=."
    )


def resume_same_iterator() -> str:
    return (
        "resume: dataset is the very iterator the stopped stream was reading: it is already past "
        "the counted batches, so skipping them again would lose samples. " + _RESUME_FROM_START
    )


def resume_started_generator(state: str) -> str:
    return (
        f"resume: dataset is a generator that has already run ({state}): it cannot give the "
        f"counted batches again, so they cannot be skipped exactly. " + _RESUME_FROM_START
    )


def resume_source_too_short(counted: int, found: int) -> str:
    return (
        f"resume: the checkpoint counted {counted} batch(es) but dataset ended after {found}: it is "
        f"not the data of the stopped stream (an iterator already consumed?). " + _RESUME_FROM_START
    )


def resume_other_first_batch() -> str:
    return (
        "resume: the first batch of dataset is not the first batch of the stopped stream, so "
        "skipping the counted batches would skip other samples (a shuffle without a seed, a "
        "pipeline that reshuffles, files listed in another order?). Resume only with the same "
        "batches in the same order: give the shuffle a seed and reshuffle_each_iteration=False, "
        "or start again without resume=."
    )


def resume_reshuffling_dataset() -> str:
    return (
        "resume: dataset shuffles with reshuffle_each_iteration=True (the default of "
        "Dataset.shuffle and Dataset.list_files), so each pass over it gives the samples in "
        "another order and skipping the counted batches would skip other samples. Build the "
        "pipeline with shuffle(..., seed=S, reshuffle_each_iteration=False) (list_files(..., "
        "shuffle=False)), or start again without resume=."
    )


# --------------------------------------------------------------------------- metrics, states, comparisons
CI_METHODS = ("default", "bootstrap")


def check_ci_method(ci_method: Any) -> None:
    if ci_method not in CI_METHODS:
        raise ValueError(bad_choice("ci_method", ci_method, CI_METHODS))


def bad_choice(argument: str, value: Any, choices: tuple) -> str:
    return f"{argument} must be one of {choices}, got {value!r}."


def bad_metric_field(name: str, field: str, value: Any, choices: tuple) -> str:
    return f"Metric {name!r}: {field} must be one of {choices}, got {value!r}."


def bad_metrics(seen: Any, known: list) -> str:
    return (
        f"metrics must be metric names from {known} or Metric descriptions, each once, got {seen!r}."
    )


def metric_name_taken(name: str) -> str:
    return f"A Metric named {name!r} differs from camavg's own {name}: give your metric another name."


def all_skipped(verb: str) -> str:
    return f"Every sample was skipped as non-finite: there is nothing to {verb}."


def nothing_seen(verb: str) -> str:
    return f"No sample has been seen (or every one was skipped as non-finite): there is nothing to {verb}."


def score_vector_shapes(y_shape: tuple, o_shape: tuple) -> str:
    return (
        f"y_c and o_c must be score vectors of one shape (N,), got y_c of shape {y_shape} and o_c "
        f"of shape {o_shape}."
    )


def merge_other(kind: str, other: Any) -> str:
    return f"{kind}.merge takes another {kind}, got {type(other).__name__}."


def merge_other_metrics(mine: list, theirs: list) -> str:
    return f"Cannot merge states of different metrics: {mine} and {theirs}. Merge states made for the same metrics."


def bad_margin(margin: Any) -> str:
    return (
        f"margin must be a number >= 0 in the metrics' unit (0.5 percentage points by default; 0 names "
        f"the better method on significance alone), got {margin!r}."
    )


def test_unknown_metrics(unknown: list, known: list) -> str:
    return f"test names unknown metrics {unknown}; use {known}."


def bad_test(test: Any, tests: tuple) -> str:
    return f"test must be one of {tests} or a dict {{metric: test}}, got {test!r}."


def test_does_not_apply(test: str, metric: str, allowed: tuple) -> str:
    return f"test {test!r} does not apply to {metric}; use one of {allowed}."


def too_few_methods(masked_scores: Any) -> str:
    count = len(masked_scores) if hasattr(masked_scores, "__len__") else "?"
    return (
        f"masked_scores must be a dict {{name: o_c}} of at least two methods, got "
        f"{type(masked_scores).__name__} of {count}."
    )


def unknown_methods(unknown: list, names: list) -> str:
    return f"methods names {unknown}, not in masked_scores ({names})."


def unknown_baseline(baseline: Any, names: list) -> str:
    return f"baseline={baseline!r} is not in masked_scores ({names})."


def no_pair(names: list) -> str:
    return f"No pair of methods to compare among {names}."


def bad_alpha(alpha: Any) -> str:
    return f"alpha must lie strictly between 0 and 1 (0.05 is usual), got {alpha!r}."


def no_sample_weight(kind: str, sample_weight: Any) -> str:
    return (
        f"{kind} takes no sample_weight (got {describe(sample_weight)}): the average weights every "
        f"sample alike. To leave samples out, pass only the samples you want; to count them twice, "
        f"pass them twice."
    )


# --------------------------------------------------------------------------- statistics
def needs_scipy() -> str:
    return "camavg's confidence intervals and tests need SciPy: pip install scipy"


def bad_proportion(count: int, n: int) -> str:
    return f"wilson_interval needs 0 <= count <= n and n >= 1, got count={count}, n={n}."


def bad_resamples(n_resamples: Any) -> str:
    return f"n_resamples must be a positive int such as 2000, got {n_resamples!r}."


def bad_bootstrap_method(method: Any) -> str:
    return f"method must be 'BCa', 'percentile' or 'basic', got {method!r}."


def bad_columns(shape: tuple) -> str:
    return f"columns must have shape (n,) or (n, k) with n >= 1, got {shape}."


def nonfinite_columns() -> str:
    return "columns holds non-finite values; drop those samples first."


def too_few_for_interval(n: int) -> str:
    return f"n must be at least 1 to form an interval, got {n}."


def no_such_metric(kind: str, name: str, metrics: list) -> str:
    return f"{kind} has no attribute {name!r} (its metrics: {metrics})"


# --------------------------------------------------------------------------- the engine's doors
def not_an_array(name: str, array: Any) -> str:
    return f"{name} must be an array, got {type(array).__name__}."


def unreadable_array(name: str, error: Exception) -> str:
    return f"{name} could not be read as an array of numbers: {error}"


def not_numbers(name: str, dtype: Any) -> str:
    return f"{name} must hold numbers, got dtype {dtype}."


def empty_input_list() -> str:
    return "inputs is an empty list: pass one array per model input."


def no_batch_axis(name: str, shape: tuple) -> str:
    return f"{name} must have a batch axis, shape (N, H, W, C), got shape {shape}."


def bad_normalize(normalize: Any) -> str:
    return f"normalize must be True or False, got {normalize!r}."


def bad_cam_sets(cams_sets: Any) -> str:
    return (
        "evaluate_many takes {name: cams} or a list of CAM sets, one per method, got "
        f"{type(cams_sets).__name__}; for one CAM set use evaluate(cams, score_function)."
    )


def too_few_cam_sets() -> str:
    return "compare takes {name: cams} with at least two CAM methods."


# --------------------------------------------------------------------------- streams
def bad_stream_score(score: Any, scores: tuple) -> str:
    return f"score must be one of {scores} or a callable score(outputs, targets) -> (B,), got {score!r}."


def bad_resume(resume: Any) -> str:
    return (
        f"resume must be the Checkpoint a stopped stream left on its exception "
        f"(error.camavg_checkpoint), got {type(resume).__name__}."
    )


def bad_batch(batch: Any) -> str:
    return (
        f"Each batch must be a tuple (inputs, cams, targets), got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        + ". Zip them: tf.data.Dataset.zip((images, cams, labels)), or yield (x, c, t)."
    )


def target_count(n: int, count: int) -> str:
    return (
        f"A batch holds {n} input samples but {count} targets: each batch needs one CAM "
        f"and one target per input sample."
    )


def needs_tqdm() -> str:
    return "progress=True needs tqdm: pip install tqdm (or camavg[progress])."


def not_batches(batches: Any) -> str:
    return (
        f"dataset must be an iterable of (inputs, cams, targets) batches (a tf.data.Dataset, "
        f"a generator, a list), got {type(batches).__name__}."
    )


def one_method_dict() -> str:
    return "cams is a dict of one CAM method: pass the array, or two or more methods to compare."


def other_methods(expected: Any, seen: Any) -> str:
    return f"Every batch must carry the same CAM methods: the stream began with {expected}, this batch has {seen}."


def empty_dataset() -> str:
    return "dataset is empty: there is no sample to evaluate."


# --------------------------------------------------------------------------- perturbations
def bad_perturbation_steps(perturbation: Any, steps: Any) -> str:
    return (
        f"perturbation {perturbation!r} has steps={steps!r}: a perturbation's steps must be an "
        f"integer K >= 1 (1 for a single perturbed pass, such as the CAM mask)."
    )


def bad_perturbation_parameters(perturbation: Any, steps: int, parameters: np.ndarray) -> str:
    return (
        f"perturbation {perturbation!r}.parameters() returned shape {parameters.shape}"
        + ("" if np.isfinite(parameters).all() else " holding non-finite values")
        + f": it must return a (K, P) array of finite numbers, one row per step (K = steps = "
        f"{steps}) and P >= 1 parameters (np.zeros((K, 1)) when the steps take none)."
    )


def bad_perturbation_groups(perturbation: Any, steps: int, groups: Any) -> str:
    seen = f"{groups.tolist()!r} (shape {groups.shape}, dtype {groups.dtype})" if isinstance(groups, np.ndarray) else repr(groups)
    return (
        f"perturbation {perturbation!r}.groups() returned {seen}: it must return a (G, S) integer array of step indices holding each "
        f"of 0..{steps - 1} exactly once (K = {steps} steps, S >= 1 per group), or None to run "
        f"one step at a time."
    )


def bad_group_batches(perturbation: Any, size: int, returned: int) -> str:
    return (
        f"perturbation {perturbation!r}.apply_group() returned {returned} batch(es) for {size} "
        f"parameter rows: it must return one perturbed batch per row, in the rows' order."
    )


def bad_per_sample(perturbation: Any, n: int, extra: np.ndarray) -> str:
    return (
        f"perturbation {perturbation!r}: per_sample(indices, x_shape) returned an array of shape "
        f"{extra.shape} and dtype {extra.dtype} for {n} samples; it must return an (N, ...) array "
        f"of numbers, one row per sample (N = {n}), or None."
    )


def mufidelity_argument(name: str, value: Any, expected: str) -> str:
    return f"MuFidelity: {name} must be {expected}, got {value!r}."


def mufidelity_spatial(shape: tuple) -> str:
    return (
        f"MuFidelity masks a grid of cells over two spatial axes, but the CAMs at the input's size "
        f"have shape {shape}: use it on images ((N, H, W, C) or (N, C, H, W))."
    )


def bad_curve_steps(name: str, steps: Any) -> str:
    return (
        f"{name}: steps must be an integer >= 1 (the curve's intervals; it has steps + 1 points), "
        f"got {steps!r}. Pass e.g. steps=10 (the default) or steps=H * W for one pixel per step."
    )


def bad_curve_max_fraction(name: str, max_fraction: Any) -> str:
    return (
        f"{name}: max_fraction must be a number in (0, 1] (the share of the pixels the curve "
        f"reaches), got {max_fraction!r}. Pass e.g. max_fraction=1.0 (the default: every pixel)."
    )


def bad_curve_baseline(name: str, baseline: Any) -> str:
    return (
        f"{name}: baseline must be a finite number (e.g. 0.0), \"blur\" (a Gaussian blur of the "
        f"inputs, kernel 11, sigma 5) or a callable of the inputs' batch returning the baseline "
        f"batch, got {baseline!r}."
    )


# --------------------------------------------------------------------------- ROAD (camavg_core/imputation.py)
def bad_road_fractions(fractions: Any) -> str:
    return (
        f"fractions={fractions!r}: ROAD's fractions must be a non-empty sequence of numbers in "
        f"[0, 1], the share of pixels removed at each step, e.g. (0.1, 0.2, ..., 0.9)."
    )


def bad_road_noise(noise: Any) -> str:
    return (
        f"noise={noise!r}: ROAD's noise must be a finite number >= 0, the standard deviation of "
        f"the noise on imputed pixels in the units of the inputs (0.01 for [0, 1] pixels, 2.55 "
        f"for [0, 255] pixels, 0 for none)."
    )


def road_noise_off_scale() -> str:
    # one text whatever the inputs: a stream's batches warn once, not once per range
    return ("ROAD runs with its default noise, 0.01, the original's for [0, 1] pixels, but the inputs lie "
            "outside [0, 1]: the noise is in the inputs' units (before preprocess), so it is far from the "
            "original's here (0.01 of 255 for [0, 255] pixels). Pass noise in the inputs' units "
            "(road(..., noise=2.55) or road_metric(noise=2.55) for [0, 255] pixels; for normalised inputs, "
            "0.01 divided by the normalisation's standard deviation), or filter camavg_core.RoadNoiseWarning "
            "to keep 0.01.")


def steps_of_another_size(perturbation: Any, index: int, count: int, first: int) -> str:
    return (f"{perturbation!r} sets its steps by the pixel count of the model's first input ({first} pixels, "
            f"H x W), and every input takes those steps; inputs[{index}] has {count}, for which they differ: "
            f"each step would take another share of its pixels. Resize the inputs to one H x W, or measure "
            f"each input on a model of its own (the averages and MuFidelity count no pixels: they take inputs "
            f"of any sizes).")


def road_noise_of_another_input(shape: tuple, size: int) -> str:
    return (f"ROAD's noise is drawn per sample for the model's first input ({size} values a sample); "
            f"an input of sample shape {shape} holds another number: ROAD with noise takes models whose "
            "inputs have one size. Pass noise=0 (road_metric(noise=0.0)) for the imputation alone, or "
            "measure each input on a model of its own.")


def bad_road_seed(seed: Any) -> str:
    return f"seed={seed!r}: ROAD's seed must be an integer >= 0 (it seeds each sample's noise)."


def bad_road_selection(selection: Any) -> str:
    return (
        f"selection={selection!r} is not known: use 'rank' (floor(f * P) pixels in the stable "
        f"order of Deletion) or 'percentile' (pytorch-grad-cam's cam >= np.percentile rule)."
    )


def overlapping_pair(count: int) -> str:
    return (
        f"impute_pair: the two masks both remove {count} pixel(s); a pixel can be unknown in only "
        f"one of the two systems that share the field. Impute overlapping masks one at a time, "
        f"with impute(backend, x, mask)."
    )


def bad_road_preconditioner(preconditioner: Any) -> str:
    return (
        f"preconditioner={preconditioner!r}: ROAD's imputation knows 'multigrid' (the default) "
        f"and 'jacobi'."
    )


def bad_road_solver(tol: Any, max_iter: Any) -> str:
    return (
        f"tol={tol!r}, max_iter={max_iter!r}: the imputation's solver needs a number 0 < tol < 1 "
        f"(the largest error it allows, as a fraction of each channel's spread over the image; "
        f"default 1e-4) and an integer max_iter >= 1 (default 2000)."
    )


# --------------------------------------------------------------------------- CAM shapes
def cam_channel_elsewhere(shape: tuple, other_axis: int, data_format: str, channel_axis: int) -> str:
    return (
        f"cams of shape {shape} have their channel axis of 1 at axis {other_axis}, "
        f"but data_format={data_format!r} puts it at axis {channel_axis}: squeeze "
        f"it (cams[:, 0] or cams[..., 0]) to pass (N, H, W) maps, or set data_format "
        f"to match."
    )


def cam_channels(shape: tuple, channels: int) -> str:
    return (
        f"cams of shape {shape} have {channels} channels: a CAM is one map "
        f"per sample, shape (N, H, W) or (N, H, W, 1). Average the channels, or pass "
        f"the CAM method's (N, H, W) output as it is."
    )


def single_cam(shape: tuple) -> str:
    return (
        f"cams of shape {shape} is a single map: pass one map per sample, shape (N, H, W) "
        f"(np.stack the maps; for one image, cams[None])."
    )


def cam_rank(shape: tuple) -> str:
    return (
        f"cams must have shape (N, H, W) (or (N, H, W, 1)): expected (N, H, W), got rank "
        f"{len(shape)} (shape {shape})."
    )


def input_rank(x_shape: tuple) -> str:
    return (
        f"inputs must have shape (N, H, W, C) (or (N, C, H, W) with "
        f"data_format='channels_first'), got shape {x_shape}."
    )


def cams_not_resizable(map_spatial: tuple, spatial: tuple) -> str:
    return (
        f"cams of spatial shape {map_spatial} cannot be resized to the inputs' "
        f"spatial shape {spatial}: only 2-D maps are resized; pass CAMs at the "
        f"inputs' size."
    )


# --------------------------------------------------------------------------- score functions
def numbers_as_score(count: int) -> str:
    return (
        f"score_function is a list of {count} numbers, not score functions: "
        f"for class labels, wrap them in tf_keras_vis.utils.scores.CategoricalScore(labels) "
        f"(or BinaryScore(labels) for a single sigmoid output)."
    )


def score_count(count: int, n_outputs: int) -> str:
    return (
        f"score_function is a list of {count} functions but the model has "
        f"{n_outputs} outputs: pass one score function per output."
    )


def one_score_for_outputs(n_outputs: int) -> str:
    return (
        f"The model has {n_outputs} outputs but score_function is a single function: "
        f"pass a list with one score function per output, as with tf-keras-vis."
    )


def score_not_callable(function: Any) -> str:
    return (
        f"score_function must be callable (a tf-keras-vis Score or outputs -> (N,) "
        f"scores), got {type(function).__name__}."
    )


def per_sample_count(argument: str, count: int, what: str, n: int) -> str:
    return f"{argument} holds {count} {what} for {n} samples: give one for all samples, or one per sample."


def class_index_not_integer(argument: str, shown: Any, index: int, n_classes: int) -> str:
    return (
        f"{argument} class index {shown!r} (sample {index}) is not an integer: "
        f"class indices must be integers in [0, {n_classes})."
    )


def binary_target_value(value: Any, index: int) -> str:
    return (
        f"BinaryScore target value {value!r} (sample {index}) is not True/False or 1/0: a binary "
        f"score is p where the target is 1 and 1 - p where it is 0, and any other value would be "
        f"read as one of them silently. Map the labels first, e.g. labels > 0 for -1/+1 labels."
    )


def class_index_out_of_range(argument: str, value: int, index: int, n_classes: int) -> str:
    return (
        f"{argument} class index {value} (sample {index}) is out of range for "
        f"outputs with {n_classes} classes: class indices must be integers in [0, {n_classes})."
    )


def target_shape(shape: tuple) -> str:
    return f"targets must hold one target per sample, shape (B,), got shape {shape}" + (
        ": batch the dataset (dataset.batch(32)) before evaluating it." if len(shape) == 0 else "."
    )


def categorical_output_shape(shape: tuple) -> str:
    return f"CategoricalScore needs outputs of shape (N, classes), got shape {shape}."


def binary_output_shape(shape: tuple) -> str:
    return f"BinaryScore needs outputs of shape (N, 1), got shape {shape}: one sigmoid output per sample."


def read_through_target_scores(kind: str) -> str:
    return f"camavg reads {kind} through camavg_core.scoring.target_scores."


# --------------------------------------------------------------------------- faithfulness doors
def undefined_terms(metric: str, count: int) -> str:
    return (f"{metric}: {count} sample(s) with finite scores gave an undefined (non-finite) term; this "
            f"metric does not leave samples out. Check the scores its terms divide by, or describe the "
            f"metric with leaves_out=True to leave such samples out and count them.")


def all_undefined(metric: str, n: int) -> str:
    return (f"{metric}: the term is undefined for all {n} sample(s) (e.g. MuFidelity's score drops or CAM "
            f"sums constant over the subsets), so it has no value. Check that the model's score moves when "
            f"parts of the input are removed and that the CAMs are not constant.")


def perturbed_scores(metric: str) -> str:
    return f"score_function on the inputs perturbed for {metric}"


def needs_its_perturbation(names: list) -> str:
    return (f"{', '.join(names)} cannot be computed from the two score vectors (Y_c, O_c): its terms need the "
            f"scores of its own perturbation's steps. Use AveragesCam.evaluate(cams, score, metrics=[...]), "
            f"AveragesCam.compare or a stream (evaluate_dataset(..., metrics=[...])), which run that perturbation.")


# --------------------------------------------------------------------------- command-line options
def option_needs_another(option: str, needed: str, effect: str) -> str:
    """``option`` given without ``needed``, the option it only works with; ``effect``: what
    ``option`` does, a whole phrase (``"picks the method each other is compared against"``)."""
    return (f"{option} {effect}, so without {needed} it would change nothing: add {needed}, "
            f"or leave {option} out.")
