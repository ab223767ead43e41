"""camavg's ROAD beside Quantus 0.6.0's and pytorch-grad-cam 1.5.7's on the same models, images
and maps (docs/road.md pastes this script's output).

    pip install --no-deps --target /tmp/road_peers quantus==0.6.0 grad-cam==1.5.7 pandas \
        opencv-python-headless scikit-image scikit-learn cachetools python-dateutil pytz tzdata \
        lazy_loader imageio tifffile networkx joblib threadpoolctl cloudpickle narwhals
    CAMAVG_ROAD_PEERS_DIR=/tmp/road_peers python -m benchmarks.peer_road   # from the repository root

A seconds-long run with PyTorch's CPU build. The models are seeded linear softmaxes over 3
classes (PyTorch, in eval mode, as Quantus asks) on 16 x 16 images in [0, 1]; the maps are
seeded random values (no ties, so the libraries remove the same pixels). Noise 0 on every side
where the numbers are compared, so that they are deterministic (Quantus draws its noise from
NumPy's global generator, pytorch-grad-cam from PyTorch's).

What it shows for Quantus, by numbers (16 grey images):

- Quantus' ``ROAD`` is another quantity: per percentage, the *accuracy* (argmax equal to the
  label) once the most relevant pixels are removed (MoRF only, no LeRF, no probabilities).
  Computed here from camavg's own MoRF images (``Road`` on the NumPy backend) it equals
  Quantus' over the same images: the two imputations agree (their images' largest difference
  is printed too);
- Quantus keeps the first batch's scores only: the same 16 images with ``batch_size=8`` give
  the accuracy of images 0-7, with ``batch_size=16`` that of all 16;
- on RGB images (a one-channel map broadcast over 3 channels) its imputation indexes past its
  mask and raises ``IndexError``: its tests use single-channel images only.

And for pytorch-grad-cam (16 RGB images, ``ROADCombined``'s parts built with noise 0, as its
``ROADCombined`` builds them with noise 0.01):

- camavg's ``road(selection="percentile", noise=0)`` (``camavg_torch``) against it, sample by
  sample: the same rule and the same imputation;
- camavg's default rank selection against it: its percentile rule removes a pixel more or
  fewer at some fractions;
- both as shipped, noise 0.01 (camavg's seeded per sample, pytorch-grad-cam's from
  ``torch.manual_seed(0)``): different draws, a difference of the noise's size;
- on a map that is 94% zeros, how many of the 256 pixels its MoRF removes at percentiles 10-90.

pytorch-grad-cam's package ``__init__`` imports torchvision, which does not import beside
PyTorch 2.13's CPU build; its ``metrics`` modules do not, so the script loads them from the
package's folder without running that ``__init__``.

Not part of the test suite: the peers pin other versions of the project's libraries, so they are
installed into a private directory, appended to ``sys.path`` after site-packages. Without them
the script says so and exits 0.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import numpy as np

N, SIZE, CLASSES = 16, 16, 3
PERCENTAGES = (10, 30, 50, 70, 90)


def problem(channels: int = 1):
    rng = np.random.default_rng(0)
    images = rng.random((N, channels, SIZE, SIZE)).astype(np.float32)
    maps = rng.random((N, 1, SIZE, SIZE)).astype(np.float32)
    weights = rng.normal(0.0, 0.5, (channels * SIZE * SIZE, CLASSES)).astype(np.float32)
    return images, maps, weights


def torch_model(weights):
    import torch

    linear = torch.nn.Linear(weights.shape[0], CLASSES, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weights.T))
    return torch.nn.Sequential(torch.nn.Flatten(), linear, torch.nn.Softmax(dim=1)).eval()


def camavg_morf_images(images, maps):
    """(F, N, 1, H, W): camavg's MoRF images at each percentage, noise 0 (channels first, as
    Quantus takes them)."""
    from camavg_core.backends import resolve_backend
    from camavg_core.imputation import Road

    backend = resolve_backend("numpy")
    road = Road(fractions=tuple(p / 100 for p in PERCENTAGES), noise=0.0)
    x = np.moveaxis(images, 1, -1).astype(np.float64)
    prepared = road.prepare(backend, x, np.moveaxis(maps, 1, -1))
    rows = road.parameters(SIZE * SIZE)[: len(PERCENTAGES)]  # the MoRF steps come first
    return np.stack([np.moveaxis(road.apply(backend, x, prepared, row), -1, 1) for row in rows])


def main() -> int:
    if os.environ.get("CAMAVG_ROAD_PEERS_DIR"):
        sys.path.append(os.environ["CAMAVG_ROAD_PEERS_DIR"])  # after site-packages: never their pins
    if importlib.util.find_spec("quantus") is None or importlib.util.find_spec("pytorch_grad_cam") is None:
        print("Quantus or pytorch-grad-cam is not installed; skipped (see this script's docstring)")
        return 0

    import quantus
    import torch
    from quantus.functions.perturb_func import noisy_linear_imputation

    images, maps, weights = problem()
    model = torch_model(weights)
    with torch.no_grad():
        labels = model(torch.from_numpy(images)).argmax(1).numpy()  # every image right at first

    morf = camavg_morf_images(images, maps)
    # Quantus' imputation of image 0 at each percentage, its pixels ranked as its ROAD ranks them
    order = np.argsort(-maps[0].reshape(-1))
    largest = max(float(np.abs(noisy_linear_imputation(images[0], order[: int(SIZE * SIZE * p / 100)], noise=0.0)
                            - morf[k, 0]).max()) for k, p in enumerate(PERCENTAGES))
    with torch.no_grad():
        correct = np.stack([model(torch.from_numpy(step.astype(np.float32))).argmax(1).numpy() == labels
                            for step in morf])  # (F, N)

    print(f"ROAD, Quantus {quantus.__version__} beside camavg: {N} grey {SIZE} x {SIZE} images, a linear softmax "
          f"over {CLASSES} classes (PyTorch {torch.__version__}), seeded random maps, noise 0")
    print(f"  imputed images, Quantus' noisy_linear_imputation against camavg's Road (image 0, "
          f"{len(PERCENTAGES)} percentages): largest difference {largest:.1e}")
    print("  MoRF accuracy (argmax = label) by percentage removed: " + "  ".join(f"{p:>5}" for p in PERCENTAGES))
    print("  camavg's MoRF images, all 16             " + "  ".join(f"{v:5.3f}" for v in correct.mean(1)))
    print("  camavg's MoRF images, the first 8        " + "  ".join(f"{v:5.3f}" for v in correct[:, :8].mean(1)))
    for batch_size in (8, N):
        metric = quantus.ROAD(percentages=list(PERCENTAGES), noise=0.0, normalise=False, disable_warnings=True)
        out = metric(model=model, x_batch=images, y_batch=labels, a_batch=maps, batch_size=batch_size, device="cpu",
                     channel_first=True)
        print(f"  Quantus ROAD, batch_size={batch_size:<2}              " + "  ".join(f"{out[p]:5.3f}" for p in PERCENTAGES))

    rgb, rgb_maps, rgb_weights = problem(channels=3)
    metric = quantus.ROAD(percentages=list(PERCENTAGES), noise=0.0, normalise=False, disable_warnings=True)
    try:
        metric(model=torch_model(rgb_weights), x_batch=rgb, y_batch=labels, a_batch=rgb_maps, batch_size=N,
               device="cpu", channel_first=True)
        print("  RGB images: Quantus ran")
    except Exception as error:  # noqa: BLE001  what Quantus raises is the finding
        print(f"  RGB images (a one-channel map): Quantus raises {type(error).__name__}: {error}")
    beside_pytorch_grad_cam()
    return 0


def grad_cam_metrics():
    """pytorch-grad-cam's ``metrics`` modules, loaded from its package folder without the
    package's ``__init__`` (which imports torchvision)."""
    folder = os.path.dirname(importlib.util.find_spec("pytorch_grad_cam").origin)
    package = types.ModuleType("pytorch_grad_cam")
    package.__path__ = [folder]
    sys.modules["pytorch_grad_cam"] = package
    from pytorch_grad_cam.metrics import perturbation_confidence, road

    return perturbation_confidence, road


def beside_pytorch_grad_cam() -> None:
    import torch

    from camavg_core.scoring import CategoricalScore
    from camavg_torch import AveragesCam

    confidence, road = grad_cam_metrics()
    images, maps, weights = problem(channels=3)
    maps = maps[:, 0]  # (N, H, W), as pytorch-grad-cam's CAMs come
    model = torch_model(weights)
    x = torch.from_numpy(images)
    with torch.no_grad():
        labels = model(x).argmax(1).numpy()
    targets = [lambda output, label=int(label): output[label] for label in labels]
    percentiles = [10, 20, 30, 40, 50, 60, 70, 80, 90]

    def averaged(removal, imputer):
        return confidence.AveragerAcrossThresholds(
            lambda p: confidence.PerturbationConfidenceMetric(removal(p, imputer)), percentiles)

    silent = road.NoisyLinearImputer(noise=0.0)  # ROADCombined's parts, with noise 0
    theirs = (averaged(confidence.RemoveLeastRelevantFirst, silent)(x, maps, targets, model)
              - averaged(confidence.RemoveMostRelevantFirst, silent)(x, maps, targets, model)) / 2
    torch.manual_seed(0)
    shipped = road.ROADCombined(percentiles=percentiles)(x, maps, targets, model)

    metrics = AveragesCam(model, images)
    score = CategoricalScore(labels)
    _, percentile_terms, _, _ = metrics.road(maps, score, selection="percentile", noise=0.0, return_vector=True)
    rank = metrics.road(maps, score, noise=0.0)
    default = metrics.road(maps, score)

    print(f"pytorch-grad-cam's ROADCombined beside camavg: {N} RGB {SIZE} x {SIZE} images, a linear softmax, "
          "seeded random maps, percentiles 10-90")
    print(f"  noise 0, camavg selection='percentile' against pytorch-grad-cam, per sample: largest difference "
          f"{np.abs(np.asarray(percentile_terms) - theirs).max():.1e} (means {np.mean(percentile_terms):.6f} and "
          f"{theirs.mean():.6f})")
    print(f"  noise 0, camavg's default rank selection: {rank:.6f}")
    print(f"  as shipped, noise 0.01: camavg {default:.6f} (seed 0), pytorch-grad-cam {shipped.mean():.6f} "
          "(torch.manual_seed(0))")

    removed = []
    sparse = np.zeros((SIZE, SIZE), np.float32)
    sparse.reshape(-1)[:15] = np.linspace(0.2, 1.0, 15)  # 15 of 256 pixels non-zero: 94% zeros

    def count(_, mask):
        removed.append(int((mask == 0).sum()))  # its mask is 1 where a pixel stays
        return _

    for p in percentiles:
        confidence.RemoveMostRelevantFirst(p, count)(x[0], torch.from_numpy(sparse))
    print(f"  a map with 15 non-zero pixels of 256: its MoRF removes {removed} pixels at percentiles 10-90 "
          f"(camavg's rank selection, f = 1 - p / 100: {[(100 - p) * SIZE * SIZE // 100 for p in percentiles]})")


if __name__ == "__main__":
    sys.exit(main())
