"""The demo: its model learns the task, its CAMs are well formed, its reference maps behave.

The model is trained once per test session into a temporary cache (a few seconds on CPU).
"""

from __future__ import annotations

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
from reference import reference_metrics  # noqa: E402

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


@pytest.mark.slow
def test_demo_command_end_to_end(trained, cache_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CAMAVG_CACHE", str(cache_dir))
    out = tmp_path / "report"
    status = main(["demo", "--out", str(out), "--format", "json", "--quiet", "--n-images", str(N_EVAL)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    records = json.loads(captured.out)
    assert [record["method"] for record in records] == list(demo.CAM_METHODS) + list(demo.REFERENCE_MAPS)
    by_method = {record["method"]: record for record in records}
    assert by_method["reference:true-mask"]["average_drop"] < by_method["reference:inverse-mask"]["average_drop"]
    assert all(record["n"] == N_EVAL for record in records)
    assert "ReplaceToLinear" in by_method["scorecam"]["recipe"] and "max_N=8" in by_method["scorecam"]["recipe"]
    assert json.loads((out / "results.json").read_text()) == records
    assert (out / "results.csv").read_text().count("\n") == 1 + len(records)
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The conclusion: every number in it is one of this run's, and the best CAM method leads it.
    rows = json.loads((out / "comparisons.json").read_text())
    assert {(row["a"], row["b"]) for row in rows} == {
        (a, b) for i, a in enumerate(demo.CAM_METHODS) for b in demo.CAM_METHODS[i + 1:]}
    text = " ".join((out / "conclusion.txt").read_text().split())
    best = min(demo.CAM_METHODS, key=lambda method: by_method[method]["average_drop"])
    assert f"ranking by Average Drop: {best} ({by_method[best]['average_drop']:.2f})" in text
    for name in demo.REFERENCE_MAPS:
        assert f"{name} = " in text and f"Average Drop {by_method[name]['average_drop']:.2f}" in text
    for row in rows:  # Holm never lowers a p-value
        assert row["p_adjusted"] >= row["p_value"] - 1e-12


@pytest.mark.slow
def test_demo_table_states_recipes_and_options_change_them(trained, cache_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CAMAVG_CACHE", str(cache_dir))
    status = main(["demo", "--out", str(tmp_path / "r"), "--quiet", "--no-plot", "--n-images", "8",
                   "--no-replace-to-linear", "--scorecam-max-n", "all"])
    table = capsys.readouterr().out
    assert status == 0
    assert "how each map was made:" in table and "max_N=None (all channels)" in table
    assert "ReplaceToLinear()" not in table and "What the numbers say" in table
