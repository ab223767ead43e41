"""A stopped stream resumes exactly or refuses (issue 20, item 4).

Oracle: NumPy. The model is a softmax of the channel means times a known matrix, so NumPy
computes every score, and tests/reference.py the three averages. The reproducers of the issue
(the same live iterator, a finished generator, a reshuffling pipeline, a changed keep_vectors:
each once gave a wrong count with no error) are refused; a source that starts again from its
first batch resumes to the numbers of the whole data. The last test stops the stream with a
KeyboardInterrupt at a sample of the lines the batch loop runs (every line: on NumPy, in
tests/test_stream_interrupts.py), and every resume is exact.
"""

from __future__ import annotations


import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from camavg_tf.streaming import evaluate_dataset  # noqa: E402
from reference import reference_metrics  # noqa: E402
from test_stream_interrupts import check_every_resume, mean_colour_scores  # noqa: E402

N, BATCH, SIZE, CLASSES = 60, 10, 4, 3
RNG = np.random.default_rng(20)
IMAGES = RNG.uniform(0, 1, (N, SIZE, SIZE, 2)).astype(np.float32)
CAMS = RNG.uniform(0, 1, (N, SIZE, SIZE)).astype(np.float32)
LABELS = RNG.integers(0, CLASSES, N)
WEIGHTS = RNG.normal(0, 2, (2, CLASSES)).astype(np.float32)
METRICS = ("average_drop", "average_increase", "average_gain")


def model(x, training=False):
    return tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2]) @ WEIGHTS)


def numpy_scores(images, cams, labels):
    return mean_colour_scores(images, cams, labels, WEIGHTS)


EXPECTED = reference_metrics(*numpy_scores(IMAGES, CAMS, LABELS))


def batch_list():
    return [(IMAGES[i:i + BATCH], CAMS[i:i + BATCH], LABELS[i:i + BATCH]) for i in range(0, N, BATCH)]


def generator(batches: int = N // BATCH):
    yield from batch_list()[:batches]


def failing_score(fail_at: int):
    """A categorical score that raises on the ``fail_at``-th distinct batch it sees (from 0,
    told apart by their targets): a stream that stops there, whatever the source and order."""
    seen: list[bytes] = []

    def score(outputs, targets):
        key = np.asarray(targets).tobytes()
        if key not in seen:
            seen.append(key)
        if seen.index(key) == fail_at:
            raise OSError("lost the connection to the bucket")
        return tf.gather(outputs, tf.cast(targets, tf.int32), batch_dims=1)

    return score


def stop_at_batch_3(source, **options):
    with pytest.raises(OSError) as caught:
        evaluate_dataset(model, source, score=failing_score(3), **options)
    checkpoint = caught.value.camavg_checkpoint
    assert checkpoint.batches == 3 and checkpoint.state.n == 30
    return checkpoint


def assert_whole(result, n=N, expected=EXPECTED):
    assert result.n == n
    for name in METRICS:
        assert getattr(result, name) == pytest.approx(expected[name], abs=1e-4)


# ------------------------------------------------------------------ sources that restart
class Restarting:
    """An iterable whose ``__iter__`` starts afresh (as a Keras PyDataset or a loader does)."""

    def __iter__(self):
        return iter(batch_list())


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_source",
    [
        pytest.param(generator, id="re-created generator"),
        pytest.param(batch_list, id="list"),
        pytest.param(Restarting, id="restarting iterable"),
        pytest.param(lambda: tf.data.Dataset.from_tensor_slices((IMAGES, CAMS, LABELS)).batch(BATCH), id="dataset"),
        pytest.param(
            lambda: tf.data.Dataset.from_tensor_slices((IMAGES, CAMS, LABELS))
            .shuffle(N, seed=5, reshuffle_each_iteration=False).batch(BATCH),
            id="seeded dataset",
        ),
    ],
)
def test_a_source_that_starts_again_resumes_exactly(make_source):
    checkpoint = stop_at_batch_3(make_source())
    assert_whole(evaluate_dataset(model, make_source(), resume=checkpoint))


def test_the_same_dataset_object_resumes_exactly_after_a_seeded_shuffle():
    dataset = tf.data.Dataset.from_tensor_slices((IMAGES, CAMS, LABELS)).shuffle(N, seed=1, reshuffle_each_iteration=False).batch(BATCH)
    checkpoint = stop_at_batch_3(dataset)
    assert_whole(evaluate_dataset(model, dataset, resume=checkpoint, keep_vectors=False))


# ------------------------------------------------------------------ the reproducers: refused
def test_the_same_live_iterator_is_refused():
    """Issue: passing the same live iterator again gave n = 30 of 60 with no error."""
    iterator = iter(batch_list())
    checkpoint = stop_at_batch_3(iterator)
    with pytest.raises(ValueError, match="very iterator the stopped stream was reading.*re-create the generator"):
        evaluate_dataset(model, iterator, resume=checkpoint)


@pytest.mark.slow
def test_the_finished_generator_is_refused():
    """Issue: the generator, finished by its own error, passed again gave n = 30 of 60."""
    reads = {"count": 0}

    def flaky():
        for batch in batch_list():
            reads["count"] += 1
            if reads["count"] == 4:
                raise OSError("lost the connection to the bucket")
            yield batch

    source = flaky()
    with pytest.raises(OSError) as caught:
        evaluate_dataset(model, source)
    checkpoint = caught.value.camavg_checkpoint
    with pytest.raises(ValueError, match="generator that has already run.*re-create the generator"):
        evaluate_dataset(model, source, resume=checkpoint)
    assert_whole(evaluate_dataset(model, flaky(), resume=checkpoint))  # a fresh one goes on


def test_a_consumed_iterator_of_another_object_is_refused_by_its_length():
    checkpoint = stop_at_batch_3(batch_list())
    consumed = iter(batch_list())
    for _ in range(N // BATCH):
        next(consumed)
    with pytest.raises(ValueError, match="counted 3 batch\\(es\\) but dataset ended after 0"):
        evaluate_dataset(model, consumed, resume=checkpoint)


def test_a_reshuffling_dataset_is_refused():
    """Issue: a shuffled pipeline (reshuffle_each_iteration) resumed on other samples."""
    dataset = tf.data.Dataset.from_tensor_slices((IMAGES, CAMS, LABELS)).shuffle(N).batch(BATCH)
    checkpoint = stop_at_batch_3(dataset)
    with pytest.raises(ValueError, match="reshuffle_each_iteration=True.*reshuffle_each_iteration=False"):
        evaluate_dataset(model, dataset, resume=checkpoint)


def test_a_dataset_in_another_order_is_refused_by_its_first_batch():
    """An unseeded shuffle, re-created: no reshuffle in the graph, but other batches."""
    def make():
        return tf.data.Dataset.from_tensor_slices((IMAGES, CAMS, LABELS)).shuffle(N, reshuffle_each_iteration=False).batch(BATCH)

    checkpoint = stop_at_batch_3(make())
    with pytest.raises(ValueError, match="first batch of dataset is not the first batch"):
        evaluate_dataset(model, make(), resume=checkpoint)


def test_a_shuffled_generator_is_refused_by_its_first_batch():
    checkpoint = stop_at_batch_3(generator())
    with pytest.raises(ValueError, match="first batch of dataset is not the first batch"):
        evaluate_dataset(model, reversed(batch_list()), resume=checkpoint)


@pytest.mark.parametrize("was", [False, True])
def test_a_changed_keep_vectors_is_refused(was):
    """Issue: keep_vectors changed on resume gave n = 60 with 30 vector entries."""
    checkpoint = stop_at_batch_3(generator(), keep_vectors=was)
    with pytest.raises(ValueError, match=f"keep_vectors={was}, this call has keep_vectors={not was}"):
        evaluate_dataset(model, generator(), resume=checkpoint, keep_vectors=not was)
    resumed = evaluate_dataset(model, generator(), resume=checkpoint, keep_vectors=was)
    assert_whole(resumed)
    if was:
        y_c, o_c = numpy_scores(IMAGES, CAMS, LABELS)
        np.testing.assert_allclose(resumed.y_c, y_c, atol=1e-6)
        np.testing.assert_allclose(resumed.o_c, o_c, atol=1e-6)


def test_a_checkpoint_pickles_without_its_source():
    import pickle

    checkpoint = stop_at_batch_3(iter(batch_list()))
    restored = pickle.loads(pickle.dumps(checkpoint))
    assert restored.batches == 3 and restored.source() is None
    assert_whole(evaluate_dataset(model, batch_list(), resume=restored))


# ------------------------------------------------------------------ an interrupt anywhere
SHORT = 3  # batches: the loop's lines are reached with a batch counted before and after


@pytest.mark.slow
def test_an_interrupt_in_the_loop_resumes_exactly_through_tensorflow():
    """tests/test_stream_interrupts.py stops the core's loop at every line event on an engine of
    NumPy; here TensorFlow's ``evaluate_dataset`` (its adapter, its skip of counted batches) at
    every ninth, each a fresh trace of the passes."""
    n = SHORT * BATCH

    def run(resume):
        return evaluate_dataset(model, generator(SHORT), resume=resume, keep_vectors=True)

    interrupted = check_every_resume(run, range(1, 10_000, 9), *numpy_scores(IMAGES[:n], CAMS[:n], LABELS[:n]),
                                     keep_vectors=True)
    assert interrupted > 3 * SHORT  # the sample falls all through the loop's three batches


# ------------------------------------------------------------------ a checkpoint of another run
def test_a_resume_with_other_metric_settings_or_options_is_refused():
    """The checkpoint once held sums and a first-batch hash only: a resume with Deletion at 2
    steps added its sums to those of 10 steps (0.3262 where either run alone gives 0.3198 or
    0.3183), and one with normalize=True to normalize=False's."""
    from camavg_core.metrics import deletion_metric

    with pytest.raises(OSError) as caught:
        evaluate_dataset(model, generator(), score=failing_score(3), metrics=["average_drop", "deletion"])
    checkpoint = caught.value.camavg_checkpoint
    for changed in ({"metrics": ["average_drop", deletion_metric(steps=2)]},
                    {"metrics": ["average_drop", "deletion"], "normalize": True},
                    {"metrics": ["average_drop", "deletion"], "activation": "identity"}):
        with pytest.raises(ValueError, match="the checkpoint is of a run that measured something else"):
            evaluate_dataset(model, generator(), resume=checkpoint, **changed)
    # the same settings resume, to the numbers of the whole data
    resumed = evaluate_dataset(model, generator(), resume=checkpoint, metrics=["average_drop", "deletion"])
    assert resumed.n == N and resumed.average_drop == pytest.approx(EXPECTED["average_drop"], abs=1e-4)


def test_a_resume_with_a_retrained_keras_model_is_refused():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((SIZE, SIZE, 2))
    net = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(OSError) as caught:
        evaluate_dataset(net, generator(), score=failing_score(3))
    checkpoint = caught.value.camavg_checkpoint
    assert evaluate_dataset(net, generator(), resume=checkpoint).n == N  # the same weights: resumed
    net.set_weights([w * 2.0 for w in net.get_weights()])
    with pytest.raises(ValueError, match="a model with other weights"):
        evaluate_dataset(net, generator(), resume=checkpoint)


def test_a_source_cut_into_other_batch_sizes_is_refused():
    """Batches of 10, stopped after 3 (30 samples); the same data in batches of 10 then 5:
    the first batch is the same, so its hash passes, but the 3 batches skipped hold 20 samples,
    and 10 would have been counted twice (n = 70 from 60 samples)."""
    checkpoint = stop_at_batch_3(generator())
    rebatched = [(IMAGES[:10], CAMS[:10], LABELS[:10])] + [
        (IMAGES[i:i + 5], CAMS[i:i + 5], LABELS[i:i + 5]) for i in range(10, N, 5)]
    with pytest.raises(ValueError, match="counted 30 samples in its first 3 batches.*hold 20"):
        evaluate_dataset(model, rebatched, resume=checkpoint)


def test_binary_targets_other_than_0_and_1_are_refused():
    """-1/+1 labels were read as True for both: 1 - p never scored. tf-keras-vis reads them so
    too; camavg names the sample and the mapping to pass."""
    sigmoid_model = lambda x, training=False: tf.sigmoid(tf.reduce_mean(x, axis=[1, 2, 3])[:, None] - 0.5)  # noqa: E731
    labels = np.where(LABELS % 2 == 0, -1, 1)
    batches = [(IMAGES[i:i + BATCH], CAMS[i:i + BATCH], labels[i:i + BATCH]) for i in range(0, N, BATCH)]
    with pytest.raises(ValueError, match=r"target value -1 \(sample \d+\) is not True/False or 1/0.*labels > 0"):
        evaluate_dataset(sigmoid_model, batches, score="binary")
    mapped = [(x, c, t > 0) for x, c, t in batches]
    assert evaluate_dataset(sigmoid_model, mapped, score="binary").n == N
