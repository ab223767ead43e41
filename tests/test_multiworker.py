"""Two hosts, played by two processes on 127.0.0.1: MultiWorkerMirroredStrategy and jax.distributed.

TensorFlow: the test starts two worker processes (this file run as a script) on free ports,
each with its ``TF_CONFIG``, as two hosts would run. Each evaluates the same data with
``AveragesCam(strategy=...)``, ``evaluate_dataset``, ``camavg_tf.distribute`` and the Keras
metrics and prints what it got as JSON; the test checks that both agree with NumPy and with one
device.

JAX: two processes (two CPU devices each) call ``jax.distributed.initialize``, each evaluates
its share of the samples with ``camavg_jax.AveragesCam``, and the sum-only ``MetricState`` is
summed across them, the recipe of README.md (Scaling out); both must give the NumPy numbers of all the
samples.

How it is bounded in time:
- the ports are picked free just before the start, on 127.0.0.1 only;
- each worker's collectives time out after ``COLLECTIVE_TIMEOUT_S`` (CommunicationOptions), so a
  worker whose peer died fails instead of waiting for ever;
- ``jax.distributed.initialize`` gives up after ``COLLECTIVE_TIMEOUT_S``;
- the test polls both workers against one deadline (``DEADLINE_S``); as soon as one exits with
  an error, or the deadline passes, it kills both (by their process handles) and fails with the
  tail of their logs;
- a worker leaves with ``os._exit`` once its report is flushed, so a gRPC server that is slow to
  shut down cannot hold the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

WORKERS = 2
DEADLINE_S = 300  # a guard against a hung worker, not a timing: a loaded 2-core machine took 124 s
COLLECTIVE_TIMEOUT_S = 60


# --------------------------------------------------------------------------- the JAX worker
# Defined before TensorFlow is imported: a JAX worker has no use for it.
def jax_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """11 images (split 6 + 5 over the two processes), their CAMs, and a logistic model."""
    rng = np.random.default_rng(7)
    images = rng.uniform(0.0, 1.0, (11, 4, 4, 2)).astype(np.float32)
    cams = rng.uniform(0.0, 1.0, (11, 4, 4)).astype(np.float32)
    weights = rng.normal(0.0, 0.5, 32).astype(np.float32)
    return images, cams, weights, 0.1


def jax_worker_main() -> None:
    import jax

    jax.distributed.initialize(
        coordinator_address=os.environ["CAMAVG_COORDINATOR"],
        num_processes=WORKERS,
        process_id=int(os.environ["CAMAVG_PROCESS_ID"]),
        initialization_timeout=COLLECTIVE_TIMEOUT_S,
    )
    import jax.numpy as jnp
    from jax.experimental import multihost_utils

    from camavg_core import MetricState
    from camavg_jax import AveragesCam

    images, cams, weights, bias = jax_data()

    def apply_fn(x):
        p = jax.nn.sigmoid(x.reshape(x.shape[0], -1) @ weights + bias)
        return jnp.stack([p, 1.0 - p], axis=1)

    # the recipe of README.md (Scaling out): each process its own samples, then one sum across processes
    mine = slice(jax.process_index(), None, jax.process_count())
    result = AveragesCam(apply_fn, images[mine], batch_size=4).evaluate(cams[mine], lambda out: out[:, 0])
    local = MetricState.empty().update(result.y_c, result.o_c)
    per_process = multihost_utils.process_allgather(np.asarray(local.flat(), dtype=np.float64))
    total = local.from_flat(per_process.sum(axis=0)).result()
    report = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "local_devices": jax.local_device_count(),
        "local_n": result.n,
        "n": total.n,
        "average_drop": total.average_drop,
        "average_increase": total.average_increase,
        "average_gain": total.average_gain,
    }
    sys.stdout.write("WORKER-REPORT " + json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)  # no wait on the coordinator's shutdown


if __name__ == "__main__" and "--jax-worker" in sys.argv:
    jax_worker_main()

tf = pytest.importorskip("tensorflow")

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the shared model and data live beside this file
    sys.path.insert(0, HERE)

from test_tf_distribute import (  # noqa: E402
    BATCH,
    SIZES,
    assert_matches_numpy,
    averages_cam,
    dataset,
    make_model,
    numpy_metrics,
    numpy_scores,
    replica_ids,
    score_step,
    summary_of,
)

from camavg_tf.distribute import ReplicaLoop, gather_per_sample  # noqa: E402


# --------------------------------------------------------------------------- the worker
def worker_main() -> None:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    from camavg_tf.metrics import AverageDrop, AverageGain, AverageIncrease

    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING,
        timeout_seconds=COLLECTIVE_TIMEOUT_S,
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    with strategy.scope():
        model = make_model()  # the same weights on every worker, as a shared checkpoint gives
    step = score_step(model)
    loop = ReplicaLoop(strategy, step)
    report: dict = {
        "task": json.loads(os.environ["TF_CONFIG"])["task"]["index"],
        "replicas": strategy.num_replicas_in_sync,
        "local_replicas": len(strategy.extended.worker_devices),
    }
    from camavg_tf import evaluate_dataset

    for n in SIZES:
        entry: dict = {}
        entry["given"] = summary_of(averages_cam(n, model, strategy=strategy)[1])
        entry["streamed"] = summary_of(evaluate_dataset(model, dataset(n), strategy=strategy))
        entry["user_step"] = [values.numpy().tolist() for values in loop.per_sample(dataset(n))]
        entry["probabilities"] = gather_per_sample(
            strategy, lambda batch: model(batch[0] * batch[1][..., None]), dataset(n)
        ).numpy().tolist()
        entry["replica_of_sample"] = gather_per_sample(strategy, replica_ids, dataset(n)).numpy().tolist()
        with strategy.scope():
            metrics = [AverageDrop(), AverageIncrease(), AverageGain()]

        @tf.function
        def evaluate_step(batch):
            def on_replica(replica_batch):
                y_c, o_c = step(replica_batch)
                for metric in metrics:
                    metric.update_state(y_c, o_c)

            strategy.run(on_replica, args=(batch,))

        for batch in strategy.experimental_distribute_dataset(dataset(n)):
            evaluate_step(batch)
        entry["keras_metrics"] = [float(metric.result()) for metric in metrics]
        entry["keras_counts"] = [float(tf.convert_to_tensor(metric.count)) for metric in metrics]
        report[str(n)] = entry
    sys.stdout.write("WORKER-REPORT " + json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)


# --------------------------------------------------------------------------- the launcher
def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:  # held together until now, so the two ports differ
        for sock in sockets:
            sock.close()


def tail(path: str, chars: int = 2500) -> str:
    with open(path, errors="replace") as handle:
        return handle.read()[-chars:]


class WorkersFailed(RuntimeError):
    """A worker exited with an error, or the workers ran past their deadline (all were killed)."""


def run_workers(
    commands: list[list[str]], envs: list[dict], logs: str, deadline_s: float, started: list | None = None
) -> list[str]:
    """Start one process per command, wait for all of them, return their stdout log paths.

    Fails fast: as soon as one exits with an error, or ``deadline_s`` passes, every process
    still running is killed (by its own handle) and ``WorkersFailed`` carries the logs' tail.
    ``started``, if given, receives the ``Popen`` handles (for the tests of this function).
    """
    processes = []
    try:
        for index, (command, env) in enumerate(zip(commands, envs)):
            out_path = os.path.join(logs, f"worker{index}.out")
            err_path = os.path.join(logs, f"worker{index}.err")
            with open(out_path, "w") as out, open(err_path, "w") as err:  # the child keeps its copies
                proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=os.path.dirname(HERE))
            processes.append((proc, out_path, err_path))
            if started is not None:
                started.append(proc)
        deadline = time.monotonic() + deadline_s
        while True:
            codes = [proc.poll() for proc, _, _ in processes]
            for (proc, _, err_path), code in zip(processes, codes):
                if code not in (None, 0):
                    raise WorkersFailed(f"a worker exited with {code}:\n{tail(err_path)}")
            if all(code == 0 for code in codes):
                return [out_path for _, out_path, _ in processes]
            if time.monotonic() > deadline:
                said = tail(processes[0][2])
                raise WorkersFailed(f"the workers ran past {deadline_s} s; worker 0 said:\n{said}")
            time.sleep(0.2)
    finally:
        for proc, _, _ in processes:  # only the processes started here
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> list[dict]:
    ports = free_ports(WORKERS)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    envs = [
        dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="",
        )
        for index in range(WORKERS)
    ]
    command = [sys.executable, os.path.abspath(__file__), "--worker"]
    reports = reports_of([command] * WORKERS, envs, str(tmp_path_factory.mktemp("multiworker")))
    return sorted(reports, key=lambda report: report["task"])


def reports_of(commands: list[list[str]], envs: list[dict], logs: str) -> list[dict]:
    """Run the workers under the deadline; the JSON report each printed."""
    try:
        outputs = run_workers(commands, envs, logs, DEADLINE_S)
    except WorkersFailed as exc:
        pytest.fail(str(exc))
    reports = []
    for out_path in outputs:
        with open(out_path) as handle:
            lines = [line for line in handle.read().splitlines() if line.startswith("WORKER-REPORT ")]
        assert lines, f"a worker gave no report:\n{tail(out_path)}"
        reports.append(json.loads(lines[-1][len("WORKER-REPORT ") :]))
    return reports


@pytest.mark.slow
def test_jax_distributed_processes_sum_their_states_to_the_numpy_numbers(tmp_path):
    pytest.importorskip("jax")
    pytest.importorskip("camavg_jax.averages")
    coordinator = f"127.0.0.1:{free_ports(1)[0]}"
    envs = [
        dict(
            os.environ,
            CAMAVG_COORDINATOR=coordinator,
            CAMAVG_PROCESS_ID=str(index),
            JAX_PLATFORMS="cpu",
            XLA_FLAGS="--xla_force_host_platform_device_count=2",  # each "host" shards over 2 devices
        )
        for index in range(WORKERS)
    ]
    command = [sys.executable, os.path.abspath(__file__), "--jax-worker"]
    reports = reports_of([command] * WORKERS, envs, str(tmp_path))
    reports.sort(key=lambda report: report["process"])
    images, cams, weights, bias = (np.asarray(v, np.float64) for v in jax_data())

    def probability(x):
        return 1.0 / (1.0 + np.exp(-(x.reshape(len(x), -1) @ weights + bias)))

    y, o = probability(images), probability(images * cams[..., None])
    expected = numpy_metrics(y, o)
    assert [report["local_n"] for report in reports] == [6, 5]
    for report in reports:
        assert report["processes"] == 2 and report["local_devices"] == 2 and report["n"] == 11
        for name in ("average_drop", "average_increase", "average_gain"):
            assert report[name] == pytest.approx(expected[name], abs=1e-3), name


SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]


def test_a_failing_worker_gets_the_others_killed(tmp_path):
    crasher = [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"]
    started: list = []
    with pytest.raises(WorkersFailed, match="exited with 3:\n.*boom"):
        run_workers([SLEEPER, crasher], [dict(os.environ)] * 2, str(tmp_path), 120, started=started)
    assert started[0].returncode == -signal.SIGKILL  # killed, not left to sleep
    assert started[1].returncode == 3


def test_workers_past_the_deadline_are_killed(tmp_path):
    started: list = []
    with pytest.raises(WorkersFailed, match="ran past 1 s"):
        run_workers([SLEEPER, SLEEPER], [dict(os.environ)] * 2, str(tmp_path), deadline_s=1, started=started)
    assert [proc.returncode for proc in started] == [-signal.SIGKILL] * 2


# --------------------------------------------------------------------------- the checks
@pytest.mark.slow
def test_two_workers_one_replica_each(workers):
    assert [report["task"] for report in workers] == [0, 1]
    for report in workers:
        assert report["replicas"] == 2 and report["local_replicas"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_both_workers_see_every_sample_once_split_between_them(workers, n):
    for report in workers:
        replica_of = np.array(report[str(n)]["replica_of_sample"])
        assert replica_of.shape == (n,)
        assert set(replica_of.tolist()) == {0, 1}
    assert workers[0][str(n)]["replica_of_sample"] == workers[1][str(n)]["replica_of_sample"]


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("path", ["given", "streamed"])
def test_multiworker_averages_cam_and_stream_equal_numpy_on_both_workers(workers, n, path):
    for report in workers:
        assert_matches_numpy(report[str(n)][path], n)


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_multiworker_vectors_come_back_in_dataset_order(workers, n):
    y, o, probabilities = numpy_scores(n)
    for report in workers:
        entry = report[str(n)]
        np.testing.assert_allclose(entry["user_step"][0], y, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(entry["user_step"][1], o, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(entry["probabilities"], probabilities, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_keras_metrics_across_workers_equal_numpy(workers, n):
    y, o, _ = numpy_scores(n)
    expected = numpy_metrics(y, o)
    for report in workers:
        drop, increase, gain = report[str(n)]["keras_metrics"]
        assert drop == pytest.approx(expected["average_drop"], abs=1e-3)
        assert increase == pytest.approx(expected["average_increase"], abs=1e-3)
        assert gain == pytest.approx(expected["average_gain"], abs=1e-3)
        assert report[str(n)]["keras_counts"] == [n, n, n]


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_multiworker_equals_single_device(workers, n):
    single = summary_of(averages_cam(n, make_model())[1])
    for report in workers:
        entry = report[str(n)]["given"]
        for name in ("average_drop", "average_increase", "average_gain", "n", "skipped"):
            assert entry[name] == pytest.approx(single[name], rel=1e-6, abs=1e-9), name
        np.testing.assert_allclose(entry["o_c"], single["o_c"], rtol=1e-6)
    assert BATCH % WORKERS == 0  # each worker takes half of every full global batch


if __name__ == "__main__" and "--worker" in sys.argv:
    worker_main()
