"""The demo: its model learns the task, its CAMs are well formed, its reference maps behave.

The model is trained once per test session into a temporary cache (a few seconds on CPU).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

# Keras' own model.save trips NumPy 2's __array__ deprecation inside Keras; not camavg's, not the user's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

from camavg_tf import AveragesCam  # noqa: E402
from camavg_tf.app import demo  # noqa: E402
from camavg_cli.cli import main  # noqa: E402
from camavg_tf.app.recipes import Recipe, conv_layer_names, make_cams, target_score  # noqa: E402
from camavg_cli.conclusion import conclusion  # noqa: E402
from reference import reference_auc, reference_curves, reference_metrics, reference_road_value  # noqa: E402

N_EVAL = 32


@pytest.fixture(scope="module")
def cache_dir(demo_model):
    return demo_model[2]


@pytest.fixture(scope="module")
def trained(demo_model):
    model, was_trained, _ = demo_model
    assert was_trained  # the session's cache started empty: it trained once
    return model


@pytest.fixture(scope="module")
def data():
    return demo.demo_data(N_EVAL)


@pytest.mark.slow
def test_model_is_functional_with_named_conv_layers_and_softmax():
    model = demo.build_model()
    assert isinstance(model, keras.Model) and type(model).__name__ == "Functional"
    assert conv_layer_names(model) == ["conv_1", "conv_2", "conv_last"]
    assert model.get_layer("predictions").activation.__name__ == "softmax"
    assert type(model.get_layer("flatten")).__name__ == "Flatten"


@pytest.mark.slow
def test_model_beats_chance_on_unseen_images(trained, data):
    probabilities = trained.predict(data.images, verbose=0)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == data.labels))
    assert accuracy >= 0.9  # chance is 1/3
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_cache_is_reused(trained, demo_model, data):
    again, was_trained = demo.load_or_train(demo_model[2])
    assert not was_trained
    np.testing.assert_allclose(again.predict(data.images, verbose=0), trained.predict(data.images, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMAVG_CACHE", str(tmp_path))
    assert demo.default_cache_dir() == tmp_path
    monkeypatch.delenv("CAMAVG_CACHE")
    assert demo.default_cache_dir().parts[-2:] == (".cache", "camavg")


@pytest.mark.slow
def test_true_mask_keeps_the_evidence_and_its_inverse_removes_it(trained, data):
    """The ground truth of the synthetic set: the object mask has the lower Average Drop."""
    maps = demo.reference_maps(data.masks)
    metrics = AveragesCam(trained, data.images)
    score = target_score(trained, data.labels)
    true_mask = metrics.evaluate(maps["reference:true-mask"], score)
    inverse = metrics.evaluate(maps["reference:inverse-mask"], score)
    assert true_mask.average_drop < inverse.average_drop
    # The same in NumPy, independently of camavg's masking.
    rows = np.arange(N_EVAL)
    y_c = trained.predict(data.images, verbose=0)[rows, data.labels].astype(np.float64)
    drops = {}
    for name in ("reference:true-mask", "reference:inverse-mask"):
        o_c = trained.predict(data.images * maps[name][..., None], verbose=0)[rows, data.labels]
        drops[name] = reference_metrics(y_c, o_c)["average_drop"]
    assert drops["reference:true-mask"] == pytest.approx(true_mask.average_drop, abs=1e-3)
    assert drops["reference:inverse-mask"] == pytest.approx(inverse.average_drop, abs=1e-3)


@pytest.mark.slow
def test_map_of_ones_changes_nothing(trained, data):
    ones = demo.reference_maps(data.masks)["reference:ones"]
    result = AveragesCam(trained, data.images).evaluate(ones, target_score(trained, data.labels))
    # Masking with ones is the identity, so O_c = Y_c: every term is 0.
    assert (result.average_drop, result.average_increase, result.average_gain) == (0.0, 0.0, 0.0)


@pytest.mark.slow
def test_reference_maps_are_what_they_say(data):
    maps = demo.reference_maps(data.masks, seed=5)
    assert list(maps) == list(demo.REFERENCE_MAPS)
    np.testing.assert_array_equal(maps["reference:true-mask"], data.masks)
    np.testing.assert_array_equal(maps["reference:inverse-mask"], 1.0 - data.masks)
    np.testing.assert_array_equal(maps["reference:ones"], np.ones_like(data.masks))
    np.testing.assert_array_equal(maps["reference:random"], demo.reference_maps(data.masks, seed=5)["reference:random"])
    assert not np.array_equal(maps["reference:random"], demo.reference_maps(data.masks, seed=6)["reference:random"])


@pytest.mark.slow
def test_every_cam_method_gives_unit_range_maps(trained, data):
    images, labels = data.images[:8], data.labels[:8]
    cams = {method: make_cams(recipe, trained, images, labels) for method, recipe in demo.demo_recipes().items()}
    cams.update(demo.reference_maps(data.masks[:8]))
    assert list(cams) == list(demo.CAM_METHODS) + list(demo.REFERENCE_MAPS)
    for name, cam in cams.items():
        assert cam.shape == (8, demo.IMAGE_SIZE, demo.IMAGE_SIZE), name
        assert cam.dtype == np.float32, name
        assert np.isfinite(cam).all() and cam.min() >= 0.0 and cam.max() <= 1.0, name
    # Behind the demo's Flatten head each method gives its own maps (behind global average
    # pooling Grad-CAM++ and Layer-CAM gave one map: docs/demo.md), so the demo compares four methods.
    for first, second in itertools.combinations(demo.CAM_METHODS, 2):
        assert np.abs(cams[first] - cams[second]).max() > 1e-2, (first, second)


@pytest.mark.slow
def test_each_recipe_is_the_tf_keras_vis_call_that_docs_command_line_describes(trained, data):
    """camavg's recipe for each method, against tf-keras-vis called directly as the table in
    docs/command-line.md says: ReplaceToLinear, penultimate_layer, CategoricalScore(targets),
    max_N=8 for Score-CAM. A layer other than the default shows that the recipe's layer is used."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    images, labels = data.images[:4], data.labels[:4]
    classes = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam, "layercam": Layercam}
    assert sorted(classes) == sorted(demo.CAM_METHODS)
    for method, cls in classes.items():
        extra = {"max_N": 8} if method == "scorecam" else {}
        direct = cls(trained, model_modifier=ReplaceToLinear(), clone=True)(
            CategoricalScore(labels.tolist()), images, penultimate_layer="conv_2", **extra)
        cams = make_cams(Recipe(method, "conv_2"), trained, images, labels)
        np.testing.assert_allclose(cams, np.clip(np.nan_to_num(direct), 0.0, 1.0), atol=1e-6, err_msg=method)
        at_default = make_cams(Recipe(method, demo.DEFAULT_LAYER), trained, images, labels)
        assert np.abs(cams - at_default).max() > 1e-2, method


@pytest.fixture(scope="module")
def demo_run(trained, cache_dir, tmp_path_factory):
    """``camavg demo`` on N_EVAL images, once for the tests that read its output:
    ``(status, printed JSON records, standard error, the --out folder)``."""
    out = tmp_path_factory.mktemp("demo") / "report"
    printed, errors = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        patch.setenv("CAMAVG_CACHE", str(cache_dir))
        status = main(["demo", "--out", str(out), "--format", "json", "--quiet", "--n-images", str(N_EVAL)])
    return status, printed.getvalue(), errors.getvalue(), out


@pytest.mark.slow
def test_demo_command_end_to_end(demo_run):
    status, printed, errors, out = demo_run
    assert status == 0, errors
    records = json.loads(printed)
    assert [record["method"] for record in records] == list(demo.CAM_METHODS) + list(demo.REFERENCE_MAPS)
    by_method = {record["method"]: record for record in records}
    assert by_method["reference:true-mask"]["average_drop"] < by_method["reference:inverse-mask"]["average_drop"]
    # The object mask deletes the evidence first and restores it first; its inverse does the opposite.
    assert by_method["reference:true-mask"]["deletion"] < by_method["reference:inverse-mask"]["deletion"]
    assert by_method["reference:true-mask"]["insertion"] > by_method["reference:inverse-mask"]["insertion"]
    assert all(record["n"] == N_EVAL for record in records)
    for record in records:  # what the curves were measured with, for the record
        assert set(record["settings"]) == {"deletion", "insertion"}
        assert all(f"steps={demo.CURVE_STEPS}" in text and "baseline=0.0" in text for text in record["settings"].values())
    assert "ReplaceToLinear" in by_method["scorecam"]["recipe"] and "max_N=8" in by_method["scorecam"]["recipe"]
    assert json.loads((out / "results.json").read_text()) == records
    assert (out / "results.csv").read_text().count("\n") == 1 + len(records)
    assert "deletion_low" in (out / "results.csv").read_text().splitlines()[0]
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The conclusion: every number in it is one of this run's, and the best CAM method leads it.
    rows = json.loads((out / "comparisons.json").read_text())
    assert {(row["a"], row["b"]) for row in rows} == {
        (a, b) for i, a in enumerate(demo.CAM_METHODS) for b in demo.CAM_METHODS[i + 1:]}
    assert {row["metric"] for row in rows} == {"average_drop", "average_increase", "average_gain", "deletion", "insertion"}
    text = " ".join((out / "conclusion.txt").read_text().split())
    best = min(demo.CAM_METHODS, key=lambda method: by_method[method]["average_drop"])
    assert f"ranking by Average Drop: {best} ({by_method[best]['average_drop']:.2f})" in text
    for name in demo.REFERENCE_MAPS:
        assert f"{name} = " in text and f"Average Drop {by_method[name]['average_drop']:.2f}" in text
    for row in rows:  # Holm never lowers a p-value
        assert row["p_adjusted"] >= row["p_value"] - 1e-12


def _reference_values(model, images, labels, cams, kind):
    """Each map set's mean AUC from tests/reference.py's curves, written from RISE's definition
    one image at a time; the perturbed images it makes are scored by the model in one batch
    (the reference visits them sample by sample, step by step)."""
    perturbed = []

    def record(sample, image):
        perturbed.append(image)
        return 0.0

    values = {}
    for name, cam in cams.items():
        perturbed.clear()
        reference_curves(record, images, cam, kind, steps=demo.CURVE_STEPS)
        outputs = model.predict(np.stack(perturbed).astype(np.float32), batch_size=256, verbose=0)
        targets = np.repeat(labels, demo.CURVE_STEPS + 1)
        curves = outputs[np.arange(targets.size), targets].astype(np.float64).reshape(len(images), -1)
        values[name] = float(np.mean(reference_auc(curves)))
    return values


@pytest.mark.slow
def test_demo_deletion_and_insertion_are_the_numpy_references(demo_run, trained, data):
    """The demo's Deletion and Insertion of each map set, against tests/reference.py's NumPy
    curves (stable ranking, k_i = floor(i * P / steps), black baseline, trapezoid AUC) of the
    same maps, the model called on the reference's own perturbed images."""
    status, printed, errors, _ = demo_run
    assert status == 0, errors
    by_method = {record["method"]: record for record in json.loads(printed)}
    recipes = demo.demo_recipes()
    cams = {method: make_cams(recipes[method], trained, data.images, data.labels) for method in ("gradcam", "layercam")}
    cams.update(demo.reference_maps(data.masks))
    for kind in ("deletion", "insertion"):
        expected = _reference_values(trained, data.images, data.labels, cams, kind)
        for name, value in expected.items():
            assert by_method[name][kind] == pytest.approx(value, abs=1e-5), (kind, name)


def _stated(kind, row, values):
    """The bullet the conclusion must give for one comparison row of ``kind``, worked out from
    the row and the methods' values: the method ahead in the metric's direction, how far
    ahead, and the interval of that amount."""
    from camavg_core.metrics import metric_named

    higher, title = metric_named(kind).higher_is_better, metric_named(kind).title
    a, b = row["a"], row["b"]
    # the row's difference is a minus b, of the values the results report
    assert row["difference"] == pytest.approx(values[a] - values[b], abs=1e-9)
    ahead = (a if values[a] >= values[b] else b) if higher else (a if values[a] <= values[b] else b)
    behind = b if ahead == a else a
    low, high = (row["low"], row["high"]) if row["difference"] >= 0 else (-row["high"], -row["low"])
    side = "higher" if higher else "lower"
    shown = metric_named(kind).format  # its own property test: tests/test_metrics.py
    amount, interval = shown(abs(row["difference"])), f"95% CI {shown(low)} to {shown(high)}"
    if row["better"] is not None:
        assert row["better"] == ahead and row["p_adjusted"] < 0.05 and (low > row["margin"])
        return f"- {ahead} is more faithful than {behind}: {title} {amount} {side} ({interval}),"
    if row["p_adjusted"] < 0.05:
        return (f"- {ahead} and {behind}: a difference too small to matter ({title} {amount} {side} for {ahead}, "
                f"{interval},")
    if row["p_value"] < 0.05 and (low > 0 or high < 0):  # significant alone, not after Holm's adjustment
        return (f"- {ahead} and {behind}: no clear difference after Holm's adjustment ({title} {amount} {side} for "
                f"{ahead}, {interval}; this interval and p")
    return f"- {ahead} and {behind}: no clear difference ({title} {amount} {side} for {ahead}, {interval},"


@pytest.mark.slow
def test_demo_conclusion_states_deletion_and_insertion_as_the_comparisons_say(demo_run):
    status, printed, errors, out = demo_run
    assert status == 0, errors
    values = {record["method"]: record for record in json.loads(printed)}
    rows = json.loads((out / "comparisons.json").read_text())
    text = " ".join((out / "conclusion.txt").read_text().split())
    for kind, joiner, best_first in (("deletion", " < ", False), ("insertion", " > ", True)):
        ranked = sorted(demo.CAM_METHODS, key=lambda method: values[method][kind], reverse=best_first)
        assert f"ranking by {kind.title()}: " + joiner.join(f"{m} ({values[m][kind]:.3f})" for m in ranked) in text
        kind_rows = [row for row in rows if row["metric"] == kind]
        assert len(kind_rows) == 6 and all(row["margin"] == 0.005 for row in kind_rows)
        for row in kind_rows:
            assert _stated(kind, row, {m: values[m][kind] for m in demo.CAM_METHODS}) in text, row
    assert "Deletion (" in text and "lower means" in text and "Insertion (" in text and "higher means" in text


@pytest.mark.slow
def test_demo_road_is_the_spsolve_reference_and_its_conclusion_says_so(trained, cache_dir, monkeypatch, tmp_path, capsys):
    """``camavg demo --metrics road``: ROAD of the reference maps (0/1 masks, ties
    everywhere) against tests/reference.py's spsolve imputation, one image and step at a time,
    with the same seeded noise, scored by the model; the conclusion ranks the CAM methods by
    ROAD, higher first, and states each pair as its comparison row says."""
    from camavg_core.imputation import DEFAULT_FRACTIONS

    monkeypatch.setenv("CAMAVG_CACHE", str(cache_dir))
    n, out = 8, tmp_path / "r"
    status = main(["demo", "--metrics", "road", "--out", str(out), "--quiet", "--no-plot", "--format", "json",
                   "--n-images", str(n)])
    printed = json.loads(capsys.readouterr().out)
    assert status == 0
    by_method = {record["method"]: record for record in printed}
    assert all("road" in record and "average_drop" not in record for record in by_method.values())
    data = demo.demo_data(n)
    maps = demo.reference_maps(data.masks)
    def predict(images):
        return trained.predict(images, batch_size=256, verbose=0)

    for name in ("reference:true-mask", "reference:inverse-mask", "reference:random"):
        expected = reference_road_value(predict, data.images, maps[name], data.labels, DEFAULT_FRACTIONS, noise=0.01)
        assert by_method[name]["road"] == pytest.approx(expected, abs=1e-5), name
    assert by_method["reference:true-mask"]["road"] > 0.1 > -0.1 > by_method["reference:inverse-mask"]["road"]

    text = " ".join((out / "conclusion.txt").read_text().split())
    values = {method: by_method[method]["road"] for method in demo.CAM_METHODS}
    ranked = sorted(demo.CAM_METHODS, key=values.get, reverse=True)
    assert "ROAD (half the difference" in text and "higher means" in text
    assert "ranking by ROAD: " + " > ".join(f"{m} ({values[m]:.3f})" for m in ranked) in text
    rows = json.loads((out / "comparisons.json").read_text())  # the CAM methods' pairs
    assert len(rows) == 6 and {row["metric"] for row in rows} == {"road"}
    for row in rows:
        assert _stated("road", row, values) in text, row


def test_conclusion_says_no_conclusion_where_the_test_finds_none():
    """Hand-made rows: one with an adjusted p above 0.05 gives no winner, one significant but
    inside the margin is 'too small to matter', one beyond it names the better method, each
    in its metric's direction."""
    from camavg_core.state import Result

    values = {"a": 0.40, "b": 0.42, "c": 0.50}
    results = {name: Result({"insertion": value}, n=50, o_c=np.full(50, value), y_c=np.full(50, 0.9))
               for name, value in values.items()}
    rows = [
        {"a": "a", "b": "b", "metric": "insertion", "difference": -0.02, "low": -0.05, "high": 0.01,
         "p_value": 0.2, "p_adjusted": 0.4, "test": "sign_flip", "better": None, "margin": 0.005},
        {"a": "a", "b": "c", "metric": "insertion", "difference": -0.10, "low": -0.14, "high": -0.06,
         "p_value": 1e-4, "p_adjusted": 3e-4, "test": "sign_flip", "better": "c", "margin": 0.005},
        {"a": "b", "b": "c", "metric": "insertion", "difference": -0.08, "low": -0.09, "high": -0.004,
         "p_value": 0.01, "p_adjusted": 0.02, "test": "sign_flip", "better": None, "margin": 0.005},
    ]
    text = " ".join(conclusion(results, rows, {}).split())
    assert "ranking by Insertion: c (0.500) > b (0.420) > a (0.400)" in text
    assert "- b and a: no clear difference (Insertion 0.020 higher for b, 95% CI -0.010 to 0.050, adjusted p = 0.4)" in text
    assert "- c is more faithful than a: Insertion 0.100 higher (95% CI 0.060 to 0.140), adjusted p = 3.0e-04." in text
    assert ("- c and b: a difference too small to matter (Insertion 0.080 higher for c, 95% CI 0.004 to 0.090, "
            "adjusted p = 0.02; the interval does not clear the 0.005 margin)") in text
    assert "Average Drop" not in text and "Deletion" not in text


def test_conclusion_says_where_the_pairs_own_interval_and_the_adjusted_p_disagree():
    """Hand-made rows for four methods (6 pairs, Holm): one pair whose own 95% interval
    excludes 0 (p = 0.02) while its adjusted p (0.1) does not reject: the bullet finds no clear
    difference and says the interval and p are the pair's alone, instead of printing an
    interval that contradicts it; one whose interval ends 0.0003 below 0 prints that bound as
    -0.0003 (not -0.000, whose side of 0 a reader cannot see)."""
    from camavg_core.state import Result

    values = {"a": 0.40, "b": 0.42, "c": 0.45, "d": 0.50}
    results = {name: Result({"road": value}, n=50, o_c=np.full(50, value), y_c=np.full(50, 0.9))
               for name, value in values.items()}

    def row(a, b, low, high, p, p_holm):
        return {"a": a, "b": b, "metric": "road", "difference": values[a] - values[b], "low": low, "high": high,
                "p_value": p, "p_adjusted": p_holm, "test": "sign_flip", "better": None, "margin": 0.005}

    rows = [row("a", "b", -0.035, -0.004, 0.02, 0.1), row("b", "c", -0.06, 0.0003, 0.06, 0.24),
            row("a", "c", -0.09, 0.02, 0.3, 0.6), row("a", "d", -0.2, 0.01, 0.3, 0.6),
            row("b", "d", -0.2, 0.02, 0.4, 0.8), row("c", "d", -0.2, 0.03, 0.5, 1.0)]
    text = " ".join(conclusion(results, rows, {}).split())
    assert ("- b and a: no clear difference after Holm's adjustment (ROAD 0.020 higher for b, 95% CI 0.004 to "
            "0.035; this interval and p = 0.02 are for the pair alone, adjusted p = 0.1)") in text
    assert ("- c and b: no clear difference (ROAD 0.030 higher for c, 95% CI -0.0003 to 0.060, adjusted p = 0.24)"
            in text)
    assert text.count("after Holm's adjustment") == 1 and "-0.000 " not in text


@pytest.mark.parametrize("n, methods, test, stated", [
    (6, "abcd", "sign_flip", "With 6 images no pair can be called different, whatever the maps: the sign-flip test's "
                             "smallest p-value is 2 / 2^6 = 0.031, 0.19 once adjusted for the 6 pairs, not below 0.05. "
                             "Each \"no clear difference\" below says only that; 8 images or more can show a difference."),
    (4, "ab", "sign_flip", "With 4 images no pair can be called different, whatever the maps: the sign-flip test's "
                           "smallest p-value is 2 / 2^4 = 0.12, not below 0.05. Each \"no clear difference\" below says "
                           "only that; 6 images or more can show a difference."),
    (8, "abcd", "sign_flip", None),  # 6 x 2 / 2^8 = 0.047: the first Holm step can reject
    (6, "ab", "sign_flip", None),  # one pair: 2 / 2^6 = 0.031 can reject
    (6, "abcd", "t", None),  # Hall's t has no such floor
])
def test_conclusion_says_when_the_test_cannot_reject_with_so_few_images(n, methods, test, stated):
    """The exact sign-flip p-value is at least 2 / 2^n, and Holm multiplies the smallest by the
    number of pairs: where that is 0.05 or more, every "no clear difference" is the test's floor,
    and the conclusion says so first, with the number of images that could show a difference
    (worked out here: 6 pairs need 6 x 2 / 2^n < 0.05, n >= 8; one pair, 2 / 2^n < 0.05, n >= 6)."""
    from itertools import combinations

    from camavg_core.state import Result
    from camavg_core.stats import sign_flip_test

    results = {name: Result({"road": 0.1 * k}, n=n, o_c=np.zeros(n), y_c=np.ones(n)) for k, name in enumerate(methods)}
    rows = [{"a": a, "b": b, "metric": "road", "difference": results[a].values["road"] - results[b].values["road"],
             "low": -0.5, "high": 0.5, "p_value": 0.5, "p_adjusted": 1.0, "test": test, "better": None, "margin": 0.005}
            for a, b in combinations(methods, 2)]
    text = " ".join(conclusion(results, rows, {}).split())
    # the floor is the test's own: n differences of one sign give its smallest p-value
    assert sign_flip_test(np.arange(1.0, n + 1.0)) == pytest.approx(2.0 / 2.0**n)
    if stated is None:
        assert "no pair can be called different" not in text
    else:
        assert stated in text


def test_conclusion_without_a_metric_it_states():
    from camavg_core.state import Result

    results = {name: Result({"average_gain": 1.0}, n=3) for name in ("a", "b")}
    assert conclusion(results, [], {}).startswith(
        "No conclusion in words: it reads Average Drop, Deletion, Insertion, MuFidelity or ROAD")


@pytest.mark.parametrize("metric, title, words", [
    ("road", "ROAD", "half the difference between the target's mean probability when the map's least salient"),
    ("mufidelity", "MuFidelity", "the correlation between the map's sum over random subsets of cells"),
])
def test_conclusion_states_road_and_mufidelity_higher_is_better(metric, title, words):
    """ROAD and MuFidelity read like Insertion: higher is better, so the method with the higher
    value leads the ranking and is the one called more faithful, and the sentence says what the
    metric is."""
    from camavg_core.state import Result

    values = {"a": 0.10, "b": 0.25}
    results = {name: Result({metric: value}, n=40, o_c=np.full(40, value), y_c=np.full(40, 0.9))
               for name, value in values.items()}
    rows = [{"a": "a", "b": "b", "metric": metric, "difference": -0.15, "low": -0.2, "high": -0.1,
             "p_value": 1e-5, "p_adjusted": 1e-5, "test": "sign_flip", "better": "b", "margin": 0.005}]
    text = " ".join(conclusion(results, rows, {}).split())
    assert f"{title} ({words}" in text and "higher means" in text
    assert f"ranking by {title}: b (0.250) > a (0.100)" in text
    assert f"- b is more faithful than a: {title} 0.150 higher (95% CI 0.100 to 0.200), adjusted p = 1.0e-05." in text


@pytest.mark.slow
def test_demo_table_states_recipes_and_options_change_them(trained, cache_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CAMAVG_CACHE", str(cache_dir))
    status = main(["demo", "--out", str(tmp_path / "r"), "--quiet", "--no-plot", "--n-images", "8",
                   "--no-replace-to-linear", "--scorecam-max-n", "all"])
    table = capsys.readouterr().out
    assert status == 0
    assert "how each map was made:" in table and "max_N=None (all channels)" in table
    assert "ReplaceToLinear()" not in table and "What the numbers say" in table
    assert "Deletion [95% CI]" in table and "Insertion [95% CI]" in table
