"""``camavg_torch.AveragesCam.evaluate`` on a ResNet-like model (torchvision-free), and its ratio
to a bare ``inference_mode`` forward loop over the same masked inputs.

As asv benchmarks (``asv run --python=same --quick``) this tracks the absolute time of
``evaluate`` at 96 px, N = 256. Run as a script, it prints the ratio the issue asks about:

    python benchmarks/bench_torch.py [--size 96] [--n 256] [--batch-size 64] [--repeats 5] [--threads T] [--device cuda]

The baseline is the floor camavg cannot beat: the masked inputs computed beforehand (not timed),
then only ``model(batch)`` per batch in eval mode under ``torch.inference_mode()``. ``evaluate``
also copies and checks the CAMs, masks, scores and computes the intervals. Both are timed with
fresh CAM values on every call (nothing cached), median of ``--repeats``, as wall time and as
the process's CPU time: on a machine shared with other work, CPU time with ``--threads 1`` is
the steadier measure of the work each does (wall time counts the waits for a core; with more
intra-op threads than free cores each parallel kernel waits for a descheduled thread, so wall
time then grows with the number of kernels, not with the work). Both run on the same threads
(checked).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

CLASSES = 10


def resnet_like(classes: int = CLASSES):
    """A small ResNet: a strided stem, three stages of two basic blocks (BN, ReLU, shortcut)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, inputs: int, outputs: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(outputs)
            self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(outputs)
            self.shortcut = nn.Sequential()
            if stride != 1 or inputs != outputs:
                self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(h)) + self.shortcut(x))

    torch.manual_seed(0)
    layers, width = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU()], 32
    for outputs, stride in ((32, 1), (64, 2), (128, 2)):
        layers += [Block(width, outputs, stride), Block(outputs, outputs, 1)]
        width = outputs
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes)]
    return nn.Sequential(*layers).eval()


def coarse_cams(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Grad-CAM-like maps as pytorch-grad-cam returns them: (N, H, W) float32 at the input size."""
    import torch

    coarse = torch.from_numpy(rng.uniform(0, 1, (n, 1, size // 8, size // 8)).astype(np.float32))
    return torch.nn.functional.interpolate(coarse, (size, size), mode="bilinear")[:, 0].numpy()


class TorchAveragesCam:
    """``camavg_torch.AveragesCam.evaluate`` at 96 px, batch 64."""

    params = [256]
    param_names = ["n"]
    timeout = 300

    def setup(self, n):
        try:
            import torch
        except ImportError as exc:
            raise NotImplementedError(f"torch is not available here: {exc}") from exc
        from camavg_torch import AveragesCam, CategoricalScore

        rng = np.random.default_rng(0)
        self.images = torch.from_numpy(rng.uniform(0, 1, (n, 3, 96, 96)).astype(np.float32))
        self.cam_sets = [coarse_cams(rng, n, 96) for _ in range(3)]
        self.score = CategoricalScore(rng.integers(0, CLASSES, n).tolist())
        self.metrics = AveragesCam(resnet_like(), self.images, batch_size=64, activation="softmax")
        self.turn = 0

    def time_evaluate(self, n):
        self.turn += 1  # another CAM set every call: never served from the cache
        self.metrics.evaluate(self.cam_sets[self.turn % len(self.cam_sets)], self.score)


def measure(size: int, n: int, batch_size: int, repeats: int, device: str = "cpu") -> dict:
    import torch

    from camavg_torch import AveragesCam, CategoricalScore

    rng = np.random.default_rng(0)
    model = resnet_like().to(device)
    images = torch.from_numpy(rng.uniform(0, 1, (n, 3, size, size)).astype(np.float32)).to(device)
    synchronize = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    score = CategoricalScore(rng.integers(0, CLASSES, n).tolist())
    metrics = AveragesCam(model, images, batch_size=batch_size, activation="softmax")
    cam_sets = [coarse_cams(rng, n, size) for _ in range(repeats + 1)]

    def clocks() -> np.ndarray:
        return np.array([time.perf_counter(), time.process_time()])

    threads = set()  # both run on the same intra-op threads: torch's setting, read as each runs

    def bare(cams: np.ndarray) -> torch.Tensor:
        masked = images * torch.from_numpy(cams).to(device)[:, None]  # not timed: the floor is the forward
        synchronize()
        threads.add(torch.get_num_threads())
        start = clocks()
        with torch.inference_mode():
            outputs = [model(masked[i : i + batch_size]) for i in range(0, n, batch_size)]
        synchronize()
        return clocks() - start, torch.softmax(torch.cat(outputs), dim=-1).cpu()

    def camavg(cams: np.ndarray):
        threads.add(torch.get_num_threads())
        start = clocks()
        result = metrics.evaluate(cams, score)
        return clocks() - start, result

    bare(cam_sets[-1]), camavg(cam_sets[-1])  # warm-up: allocator, oneDNN kernels
    bare_times, camavg_times = [], []
    for turn, cams in enumerate(cam_sets[:repeats]):
        # interleaved, each first in turn, so drifts in machine load hit both alike
        timed = {run: run(cams) for run in ((bare, camavg) if turn % 2 == 0 else (camavg, bare))}
        bare_times.append(timed[bare][0])
        camavg_times.append(timed[camavg][0])
    outputs, result = timed[bare][1], timed[camavg][1]  # of the same CAMs
    assert len(threads) == 1, threads
    expected = outputs[torch.arange(n), torch.tensor(score.indices)].double().numpy()
    agreement = float(np.abs(result.o_c - expected).max())
    bare_s, camavg_s = np.median(bare_times, axis=0), np.median(camavg_times, axis=0)
    return {
        "bare_s": bare_s,
        "camavg_s": camavg_s,
        "ratio": camavg_s / bare_s,
        "o_c_max_abs_diff": agreement,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="where the model and images live, e.g. cuda")
    arguments = parser.parse_args()
    if arguments.threads:
        import torch

        torch.set_num_threads(arguments.threads)
    figures = measure(arguments.size, arguments.n, arguments.batch_size, arguments.repeats, arguments.device)
    print(f"torch {figures['torch']}, {arguments.device}, {figures['threads']} threads; ResNet-like, {arguments.size} px, "
          f"N = {arguments.n}, batch {arguments.batch_size}, median of {arguments.repeats}")
    print(f"{'':34}{'wall':>9}{'CPU':>9}")
    print(f"{'bare inference_mode forward loop':34}" + "".join(f"{v:8.3f}s" for v in figures["bare_s"]))
    print(f"{'camavg_torch evaluate':34}" + "".join(f"{v:8.3f}s" for v in figures["camavg_s"]))
    print(f"{'ratio':34}" + "".join(f"{v:9.3f}" for v in figures["ratio"]))
    print(f"largest |O_c difference|          {figures['o_c_max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
