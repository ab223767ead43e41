"""What camavg does with bad input: one list of cases, run at every door and rendered as the table.

Each :class:`Case` is one kind of bad (or merely unusual) input: what it is, what camavg does,
the exception type and a fragment of the message, and the doors it applies to. The test
``tests/test_bad_input_table.py`` runs every case at every door it names and checks the same
exception type and message text at each; the table of ``docs/bad-input.md`` is generated from
the same cases, so table and behaviour cannot drift::

    python tests/bad_input_cases.py --write docs/bad-input.md

This module imports only NumPy: the doors themselves are called by the test.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from typing import Any, Callable

import numpy as np

#: doors that take score vectors (Y_c, O_c)
SCORE_DOORS = {
    "core": "`avg_drop` / `avg_increase` / `avg_gain`",
    "summarize": "`summarize`",
    "state": "`MetricState.update`",
    "keras": "Keras metric",
    "keras_graph": "Keras metric in `tf.function`",
}
#: doors that take a model, inputs and CAMs
CAM_DOORS = {
    "tf_cam": "`camavg_tf.AveragesCam`",
    "tf_strategy": "`camavg_tf.AveragesCam(strategy=...)`",
    "jax_cam": "`camavg_jax.AveragesCam`",
    "torch_cam": "`camavg_torch.AveragesCam`",
    "tf_stream": "`camavg_tf.evaluate_dataset`",
    "jax_stream": "`camavg_jax.evaluate_dataset`",
}
ACCEPTED = "accepted"
#: the error a graph assertion raises inside ``tf.function`` (tf.errors.InvalidArgumentError)
GRAPH_ERROR = "InvalidArgumentError"
FIX_NAN = "nan_policy='omit' to skip non-finite samples and count them in `skipped`"
FIX_LOGITS = "the model seems to return logits. Pass activation='softmax'"


@dataclasses.dataclass(frozen=True)
class Case:
    """One kind of input and what every door does with it.

    Attributes:
        id: the test id.
        input: what the input is (Markdown, for the table).
        does: what camavg does (Markdown).
        error: ``'ValueError'``, ``'TypeError'`` or ``'accepted'`` (a correct result).
        message: a fragment every raising door's message contains (the same validation
            function's text); for the CAM doors the whole message is the same at every door.
        doors: the doors the input applies to (keys of :data:`SCORE_DOORS` or :data:`CAM_DOORS`).
        build: ``build(data) -> dict`` of the arguments (see the test for the keys).
        outcomes: doors whose outcome differs from ``error``: ``{door: (error, fragment)}``.
        graph_check: the check looks at values, so inside ``tf.function`` it is a graph
            assertion (:data:`GRAPH_ERROR`) with the same text.
    """

    id: str
    input: str
    does: str
    error: str
    message: str
    doors: tuple[str, ...]
    build: Callable[[Any], dict]
    outcomes: dict = dataclasses.field(default_factory=dict)
    graph_check: bool = False

    def outcome(self, door: str) -> tuple[str, str]:
        """``(error, fragment)`` at ``door``."""
        if door in self.outcomes:
            return self.outcomes[door]
        if door == "keras_graph" and self.graph_check and self.error != ACCEPTED:
            return GRAPH_ERROR, self.message
        return self.error, self.message


ALL_SCORE_DOORS = tuple(SCORE_DOORS)
EAGER_SCORE_DOORS = ALL_SCORE_DOORS
ALL_CAM_DOORS = tuple(CAM_DOORS)
CAM_OBJECTS = ("tf_cam", "tf_strategy", "jax_cam", "torch_cam")  # the doors that take a score function
#: PyTorch's door takes channels-first images (N, C, H, W) by default, so it reads a CAM's
#: singleton channel at axis 1: these cases' outcomes differ there
TORCH_CHANNELS = {
    "channels_first": (ACCEPTED, ""),
    "column_cams": ("ValueError", "squeeze it"),
    "channels": ("ValueError", "have 8 channels"),
}


def scores(y, o, metric: str = "drop", **options) -> Callable[[Any], dict]:
    return lambda data: {"y": y, "o": o, "metric": metric, "options": options}


def cams(**changes) -> Callable[[Any], dict]:
    """The default batch (5 images, their CAMs and targets) with some parts replaced:
    values may be functions of the data."""

    def build(data) -> dict:
        arguments = {"inputs": data.images, "cams": data.cams, "targets": data.targets,
                     "score": None, "logits": False, "two_outputs": False, "options": {}}
        for key, value in changes.items():
            arguments[key] = value(data) if callable(value) else value
        return arguments

    return build


def with_nan(array: np.ndarray, sample: int) -> np.ndarray:
    broken = array.copy()
    broken[sample].flat[0] = np.nan
    return broken


SCORE_CASES = [
    Case("lengths", "`Y_c` and `O_c` of different lengths", "Refused", "ValueError",
         "both must hold one score per sample, for the same samples in the same order",
         ALL_SCORE_DOORS, scores([0.5, 0.4, 0.3], [0.2, 0.1])),
    Case("empty", "Empty `Y_c` and `O_c`",
         "The averages refuse it; a state or Keras metric adds no sample (its `result()` stays 0.0)",
         "ValueError", "are empty: there is no sample to average over", ALL_SCORE_DOORS, scores([], []),
         outcomes={"state": (ACCEPTED, ""), "keras": (ACCEPTED, ""), "keras_graph": (ACCEPTED, "")}),
    Case("matrix", "`(N, k>1)` or 3-d scores", "Refused", "ValueError",
         "must be a vector of one score per sample, shape (N,), got shape (2, 3)",
         ALL_SCORE_DOORS, scores(np.full((2, 3), 0.5), np.full((2, 3), 0.25))),
    Case("scalar", "A scalar score", "Refused", "ValueError",
         "must be a vector of one score per sample, shape (N,), got shape ()",
         ALL_SCORE_DOORS, scores(0.5, 0.25)),
    Case("column", "`(N, 1)` scores (one output unit)", "Read as `(N,)`", ACCEPTED, "",
         ALL_SCORE_DOORS, scores(np.array([[0.8], [0.5]]), np.array([[0.2], [0.5]]))),
    Case("string", "A string as scores", "Refused", "TypeError", "must be an array of scores, got str",
         EAGER_SCORE_DOORS, scores("0.5", [0.25])),
    Case("none", "`None` as scores", "Refused", "TypeError", "must be an array of scores, got NoneType",
         EAGER_SCORE_DOORS, scores(None, [0.25])),
    Case("complex", "Complex scores", "Refused (the imaginary part is never dropped silently)",
         "TypeError", "must hold real numbers, got dtype complex128",
         ALL_SCORE_DOORS, scores(np.array([0.5 + 1j]), np.array([0.25 + 0j]))),
    Case("objects", "Objects as scores", "Refused", "TypeError", "must hold numbers",
         EAGER_SCORE_DOORS, scores(np.array([object()]), [0.25])),
    Case("bools", "`bool` or integer scores", "Read as 0.0 and 1.0", ACCEPTED, "",
         ALL_SCORE_DOORS, scores(np.array([True, False]), np.array([False, True]))),
    Case("nan_raise", "NaN or ±inf score, `nan_policy='raise'` (default)",
         "Refused, naming the first bad sample where the door sees the values", "ValueError", FIX_NAN,
         ALL_SCORE_DOORS, scores([0.5, np.nan], [0.2, 0.1]), graph_check=True),
    Case("inf_masked", "±inf masked score, `nan_policy='raise'`", "Refused", "ValueError", FIX_NAN,
         ALL_SCORE_DOORS, scores([0.5, 0.4], [0.2, np.inf]), graph_check=True),
    Case("nan_omit", "NaN or ±inf score, `nan_policy='omit'`",
         "The sample is left out and counted in `skipped`", ACCEPTED, "",
         ALL_SCORE_DOORS, scores([0.5, np.nan, 0.4], [0.25, 0.1, 0.6], nan_policy="omit")),
    Case("all_skipped", "Every sample non-finite, `nan_policy='omit'`",
         "The averages refuse it; a state or Keras metric counts them as skipped", "ValueError",
         "there is nothing to average", ALL_SCORE_DOORS,
         scores([np.nan, 0.5], [0.1, np.nan], nan_policy="omit"),
         outcomes={"state": (ACCEPTED, ""), "keras": (ACCEPTED, ""), "keras_graph": (ACCEPTED, "")}),
    Case("nan_policy", "`nan_policy` other than `'raise'`/`'omit'`", "Refused", "ValueError",
         "nan_policy must be one of ('raise', 'omit'), got 'ignore'",
         ALL_SCORE_DOORS, scores([0.5], [0.25], nan_policy="ignore")),
    Case("negative_y", "Negative `Y_c` (logits), for drop", "Refused: drop and gain need probabilities",
         "ValueError", FIX_LOGITS, ALL_SCORE_DOORS, scores([2.3, -1.2], [0.5, 0.1]), graph_check=True),
    Case("negative_o", "Negative `O_c` (a logit slipped into the masked scores), for drop",
         "Refused", "ValueError", FIX_LOGITS, ALL_SCORE_DOORS, scores([0.9, 0.5], [-0.4, 0.2]),
         graph_check=True),
    Case("above_one_y", "`Y_c` above 1, for gain", "Refused (drop alone accepts it)", "ValueError",
         FIX_LOGITS, ALL_SCORE_DOORS, scores([2.3, 0.5], [0.5, 0.1], metric="gain"), graph_check=True),
    Case("above_one_o", "`O_c` above 1, for gain", "Refused", "ValueError", FIX_LOGITS,
         ALL_SCORE_DOORS, scores([0.3, 0.5], [2.0, 0.1], metric="gain"), graph_check=True),
    Case("logits_increase", "Logits, for increase alone",
         "Average Increase is defined on any score; the doors that compute all three refuse them",
         ACCEPTED, "", ALL_SCORE_DOORS, scores([2.3, -1.2], [2.5, -1.5], metric="increase"),
         outcomes={door: ("ValueError", FIX_LOGITS) for door in ("summarize", "state")}),
    Case("zero_and_one", "`Y_c` exactly 0 (a saturated softmax) or exactly 1",
         "Valid: the terms are `0 / (0 + eps) = 0`", ACCEPTED, "",
         ALL_SCORE_DOORS, scores([0.0, 1.0, 0.5], [0.2, 0.5, 0.25], metric="gain")),
]

CAM_CASES = [
    Case("cam_count", "A number of CAMs other than N", "Refused", "ValueError",
         "cams holds 3 maps but inputs holds 5 samples", ALL_CAM_DOORS, cams(cams=lambda d: d.cams[:3])),
    Case("cam_list", "A list of CAMs for a single-input model", "Refused", "ValueError",
         "cams is a list but the model has a single input", ALL_CAM_DOORS, cams(cams=lambda d: [d.cams])),
    Case("cam_rank", "CAMs of rank 1", "Refused, naming the rank", "ValueError",
         "expected (N, H, W), got rank 1", ALL_CAM_DOORS,
         cams(cams=np.full(5, 0.5, np.float32))),
    Case("single_map", "A single `(H, W)` map", "Refused", "ValueError", "is a single map",
         ALL_CAM_DOORS, cams(cams=lambda d: d.cams[0])),
    Case("channels_first", "Channels-first CAMs `(N, 1, H, W)`", "Refused where the images are "
         "channels-last: squeeze the axis or set `data_format`", "ValueError", "squeeze it", ALL_CAM_DOORS,
         cams(cams=lambda d: d.cams[:, None]), outcomes={"torch_cam": TORCH_CHANNELS["channels_first"]}),
    Case("channels", "CAMs with several channels", "Refused", "ValueError", "have 3 channels",
         ALL_CAM_DOORS, cams(cams=np.full((5, 8, 8, 3), 0.5, np.float32)),
         outcomes={"torch_cam": TORCH_CHANNELS["channels"]}),
    Case("zero_size", "CAMs of zero size", "Refused", "ValueError", "cannot be resized",
         ALL_CAM_DOORS, cams(cams=np.full((5, 0, 8), 0.5, np.float32))),
    Case("column_cams", "`(N, H, W, 1)` CAMs", "Read as `(N, H, W)` where the images are channels-last",
         ACCEPTED, "", ALL_CAM_DOORS, cams(cams=lambda d: d.cams[..., None]),
         outcomes={"torch_cam": TORCH_CHANNELS["column_cams"]}),
    Case("cam_range", "CAM values outside [0, 1]", "Refused, suggesting `normalize=True`", "ValueError",
         "or pass normalize=True", ALL_CAM_DOORS, cams(cams=lambda d: d.cams * 255)),
    Case("cam_nan", "A CAM with NaN or ±inf, `nan_policy='raise'`", "Refused, naming the first bad CAM",
         "ValueError", "cams[3] holds NaN or infinity", ALL_CAM_DOORS,
         cams(cams=lambda d: with_nan(d.cams, 3))),
    Case("cam_nan_omit", "A CAM with NaN or ±inf, `nan_policy='omit'`",
         "Its sample is skipped and counted in `skipped`", ACCEPTED, "", ALL_CAM_DOORS,
         cams(cams=lambda d: with_nan(d.cams, 3), options={"nan_policy": "omit"})),
    Case("input_nan", "Images with NaN or ±inf, `nan_policy='raise'`", "Refused, naming the first bad sample",
         "ValueError", "inputs[2] holds NaN or infinity", ALL_CAM_DOORS,
         cams(inputs=lambda d: with_nan(d.images, 2))),
    Case("input_empty", "Empty images", "Refused", "ValueError", "inputs is empty", ALL_CAM_DOORS,
         cams(inputs=lambda d: d.images[:0], cams=lambda d: d.cams[:0], targets=lambda d: d.targets[:0])),
    Case("input_none", "`None` as images", "Refused", "TypeError",
         "inputs must be an array, got NoneType", ALL_CAM_DOORS, cams(inputs=None)),
    Case("input_1d", "A 1-d array as images", "Refused", "ValueError", "inputs must have a batch axis",
         ALL_CAM_DOORS, cams(inputs=np.zeros(5, np.float32))),
    Case("cam_objects", "Object-dtype CAMs", "Refused", "TypeError", "cams must hold numbers",
         ALL_CAM_DOORS, cams(cams=np.full((5, 8, 8), 0.5, object))),
    Case("index_float", "A class index that is not an integer", "Refused, naming the sample", "ValueError",
         "class index 2.7 (sample 0) is not an integer", ALL_CAM_DOORS,
         cams(targets=np.array([2.7, 1, 2, 0, 1]))),
    Case("index_negative", "A negative class index", "Refused, naming the sample", "ValueError",
         "class index -1 (sample 1) is out of range for outputs with 3 classes", ALL_CAM_DOORS,
         cams(targets=np.array([0, -1, 2, 0, 1]))),
    Case("index_range", "A class index out of range", "Refused, naming the sample", "ValueError",
         "class index 7 (sample 2) is out of range for outputs with 3 classes", ALL_CAM_DOORS,
         cams(targets=np.array([0, 1, 7, 0, 1]))),
    Case("target_count", "A wrong number of class indices", "Refused", "ValueError",
         "holds 3 class indices for 5 samples", CAM_OBJECTS + ("tf_stream", "jax_stream"),
         cams(targets=lambda d: d.targets[:3]),
         outcomes={door: ("ValueError", "A batch holds 5 input samples but 3 targets")
                   for door in ("tf_stream", "jax_stream")}),
    Case("labels_as_score", "Class labels passed as the score function", "Refused, naming the helper",
         "TypeError", "wrap them in tf_keras_vis.utils.scores.CategoricalScore(labels)", CAM_OBJECTS,
         cams(score=lambda d: [int(t) for t in d.targets]),
         outcomes={"torch_cam": ("TypeError", "wrap them in camavg_torch.CategoricalScore(labels)")}),
    Case("score_not_callable", "A `score_function` that is not callable", "Refused", "TypeError",
         "score_function must be callable", CAM_OBJECTS, cams(score=3)),
    Case("linear_model", "A model that returns logits", "Refused for drop and gain, suggesting "
         "`activation='softmax'`", "ValueError", "Pass activation='softmax'", ALL_CAM_DOORS,
         cams(logits=True),
         # a Keras model says it returns logits by its linear output layer, an nn.Module by
         # its last nn.Linear; a JAX function only by its values
         outcomes={**{door: ("ValueError", "the model's output layer has a linear activation")
                      for door in ("tf_cam", "tf_strategy", "tf_stream")},
                   "torch_cam": ("ValueError", "with no softmax or sigmoid after it"),
                   **{door: ("ValueError", FIX_LOGITS) for door in ("jax_cam", "jax_stream")}}),
    Case("summed_above_one", "A two-output model whose summed scores exceed 1",
         "Refused: the scores of the outputs are summed; score fewer outputs", "ValueError",
         "one per model output, whose scores camavg sums (as tf-keras-vis does)", CAM_OBJECTS,
         cams(two_outputs=True)),
    Case("logits_with_softmax", "A model that returns logits, with `activation='softmax'`",
         "The softmax model's numbers", ACCEPTED, "", ALL_CAM_DOORS,
         cams(logits=True, options={"activation": "softmax"})),
    Case("option_nan_policy", "Bad `nan_policy`", "Refused", "ValueError",
         "nan_policy must be one of ('raise', 'omit'), got 'ignore'", ALL_CAM_DOORS,
         cams(options={"nan_policy": "ignore"})),
    Case("option_activation", "Bad `activation`", "Refused", "ValueError",
         "activation must be one of (None, 'softmax', 'sigmoid', 'identity'), got 'relu'", ALL_CAM_DOORS,
         cams(options={"activation": "relu"})),
    Case("option_data_format", "Bad `data_format`", "Refused", "ValueError",
         "data_format must be one of ('channels_last', 'channels_first'), got 'NHWC'", ALL_CAM_DOORS,
         cams(options={"data_format": "NHWC"})),
    Case("option_level", "`level` outside (0, 1)", "Refused", "ValueError",
         "level must be a confidence level strictly between 0 and 1 (0.95 for 95%), got 95.0",
         ALL_CAM_DOORS, cams(options={"level": 95})),
    Case("option_normalize", "`normalize` that is not a bool", "Refused", "TypeError",
         "normalize must be True or False, got 'yes'", ALL_CAM_DOORS, cams(options={"normalize": "yes"})),
    Case("option_batch_size", "`batch_size` of 0", "Refused", "ValueError",
         "batch_size must be a positive integer or None, got 0", CAM_OBJECTS, cams(options={"batch_size": 0})),
]

#: behaviour checked by tests elsewhere, kept in the guide: (input, what camavg does, test)
OTHER_ROWS = [
    ("`float16` scores", "Averaged in float64 (NumPy) or float32 (TensorFlow), never float16",
     "test_dtypes.py::test_float16_sums_are_not_rounded_to_float16"),
    ("`bfloat16` scores", "Averaged like float32", "test_dtypes.py::test_bfloat16_scores_work_in_the_averages"),
    ("`level` outside (0, 1) or not a number, at `summarize`", "`ValueError` / `TypeError`",
     "test_fuzz_core.py::test_summarize_and_result_refuse_a_bad_level"),
    ("Something other than a state passed to `MetricState.merge`", "`TypeError`",
     "test_fuzz_core.py::test_merge_refuses_what_is_not_a_state"),
    ("CAMs smaller (or larger) than the images", "Resized bilinearly (half-pixel centres, as `tf.image.resize`)",
     "test_bad_input_table.py::test_smaller_cams_are_resized"),
    ("CAMs of any range with `normalize=True`", "Each map min-max rescaled to [0, 1]",
     "test_bad_input_table.py::test_cams_outside_zero_one_with_normalize"),
    ("A constant CAM, with or without `normalize=True`",
     "Valid, finite numbers; with `normalize=True` a constant map becomes all zeros",
     "test_bad_input_table.py::test_constant_cams_are_valid"),
    ("CAMs near float32's limit with `normalize=True`", "Rescaled like any other range",
     "test_fuzz_tf.py::test_normalize_does_not_overflow_on_huge_cam_values"),
    ("CAMs of `float16`, `float64`, `bool`, `uint8`, `int32`", "Used as their float32 values",
     "test_dtypes.py::test_cams_of_any_numeric_dtype_give_their_float32_values"),
    ("`uint8` or other integer images", "Cast to the model's input dtype *before* masking (no truncation)",
     "test_dtypes.py::test_images_are_cast_to_the_model_input_dtype_before_masking"),
    ("A model under `mixed_float16`", "Within 0.5 points of its float32 twin",
     "test_mixed_precision.py::test_mixed_float16_model_is_within_half_a_point"),
    ("An image with NaN beside others in its batch, `nan_policy='omit'`, ROAD",
     "That sample skipped; the others keep their own imputation (ROAD's solver stopped for the whole batch "
     "until 2026-12-06)",
     "test_faithfulness_doors.py::test_a_non_finite_input_is_skipped_by_every_metric_under_omit"),
    ("ROAD's noise on a model whose inputs differ in channels",
     "`ValueError` advising `noise=0`, as the pass is traced (TensorFlow's failed in a reshape until 2026-12-06)",
     "test_road.py::test_tensorflow_refuses_noise_for_an_input_of_another_size_as_it_traces"),
    ("Deletion, Insertion or ROAD on a model whose inputs differ in H x W",
     "`ValueError` naming both pixel counts: the steps count the first input's pixels (another input lost "
     "another share of its own, silently, until 2026-12-06)",
     "test_road.py::test_steps_that_count_pixels_refuse_inputs_of_another_h_w"),
    ("ROAD's default noise (0.01, for [0, 1] pixels) on inputs outside [0, 1], e.g. [0, 255] pixels",
     "A `RoadNoiseWarning` once per object (once per stream), advising `noise=2.55` for [0, 255] pixels; the "
     "command line refuses it without `--road-noise` (ran silently in Python until 2026-12-06)",
     "test_faithfulness_doors.py::test_default_road_noise_on_inputs_outside_0_1_warns_once_and_names_the_fix"),
    ("Images with NaN that the model hides (max pooling), `nan_policy='omit'`",
     "The sample is skipped and counted in `skipped` all the same",
     "test_bad_input_table.py::test_nonfinite_input_is_skipped_even_when_the_model_hides_it"),
    ("Images of another size than the model takes", "Keras' `ValueError` naming both shapes",
     "test_bad_input_table.py::test_images_of_the_wrong_size_for_the_model"),
    ("A list of CAMs / inputs that does not match a multi-input model", "`ValueError` naming the inputs",
     "test_bad_input_table.py::test_array_of_cams_for_a_multi_input_model"),
    ("A `score_function` that does not return N scores", "`ValueError`",
     "test_bad_input_table.py::test_score_function_of_the_wrong_shape"),
    ("A list of score functions for a single-output model", "`ValueError`",
     "test_bad_input_table.py::test_score_function_list_for_a_single_output"),
    ("`sample_weight` given to a Keras metric", "`ValueError`: the averages weight every sample alike",
     "test_tf_metrics.py::test_sample_weight_is_refused"),
    ("Any call", "Scores, images, CAMs (arrays or tensors) and model weights are never modified",
     "test_bad_input_table.py::test_nothing_is_modified"),
    ("Any score vector", "Never modified", "test_bad_input_table.py::test_scores_are_not_modified"),
]

INTRO = """\
# Bad input

camavg returns the right number or raises a `ValueError` (`TypeError` for a wrong type) that
names the argument, what it saw, and the fix. Nothing in between: no other exception type, no
NaN in a returned metric, and your inputs, CAMs and model weights are never modified.

Every door checks the same condition with the same function of `camavg_core.validation`, so
the message text is the same at each door (only the argument's name differs: the Keras metrics
call the scores `scores` and `masked_scores`). Inside `tf.function` a check that needs the
values is a graph assertion: TensorFlow raises `InvalidArgumentError` carrying the same text.

The tables are generated from `tests/bad_input_cases.py` (`python tests/bad_input_cases.py
--write docs/bad-input.md`), and `tests/test_bad_input_table.py` runs every case at every door
marked, so a table that differs from the behaviour fails the tests. Hypothesis fuzzing
(`tests/test_fuzz_*.py`) drives the same doors with drawn shapes, dtypes, NaN and infinity.
A cell reads: the exception raised, `accepted` (a correct result), or `—` (the door does not
take that input).
"""


def _table(cases: list[Case], doors: dict[str, str]) -> list[str]:
    lines = [
        "| Input | What camavg does | Message contains | " + " | ".join(doors.values()) + " |",
        "|---|---|---|" + "---|" * len(doors),
    ]
    for case in cases:
        cells = []
        for door in doors:
            cells.append(case.outcome(door)[0] if door in case.doors else "—")
        # a fragment holding a backtick needs a double-backtick code span
        fence = "``" if "`" in case.message else "`"
        message = f"{fence} {case.message} {fence}" if fence == "``" else f"`{case.message}`"
        message = message if case.message else "—"
        lines.append(f"| {case.input} | {case.does} | {message} | " + " | ".join(cells) + " |")
    return lines


def render() -> str:
    """The whole of ``docs/bad-input.md``."""
    lines = [INTRO, "## Scores: the averages, the streaming state, the Keras metrics", ""]
    lines += _table(SCORE_CASES, SCORE_DOORS)
    lines += ["", "## A model, its inputs and CAMs: `AveragesCam` (on one device or a `tf.distribute` strategy) and the streams", ""]
    lines += _table(CAM_CASES, CAM_DOORS)
    lines += ["", "## Checked elsewhere", "", "| Input | What camavg does | Test (in `tests/`) |", "|---|---|---|"]
    lines += [f"| {what} | {does} | `{test}` |" for what, does, test in OTHER_ROWS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=pathlib.Path, help="write the page here (else print it)")
    arguments = parser.parse_args(argv)
    if arguments.write:
        arguments.write.write_text(render())
    else:
        print(render(), end="")


if __name__ == "__main__":
    main()
