"""camavg's ROAD beside Quantus 0.6.0's on the same model, images and maps (docs/road.md pastes
this script's output).

    pip install --no-deps --target /tmp/quantus_dir quantus==0.6.0 pandas opencv-python-headless \
        scikit-image scikit-learn cachetools python-dateutil pytz tzdata lazy_loader imageio \
        tifffile networkx joblib threadpoolctl cloudpickle narwhals
    CAMAVG_QUANTUS_DIR=/tmp/quantus_dir python -m benchmarks.peer_road   # from the repository root

A seconds-long run with PyTorch's CPU build. The model is a seeded linear softmax over 3 classes
(PyTorch, in eval mode, as Quantus asks) on 16 x 16 grey images in [0, 1]; the maps are seeded
random values (no ties, so both libraries remove the same pixels). Noise 0 on both sides, so
that the numbers are deterministic (Quantus draws its noise from NumPy's global generator).

What it shows, by numbers:

- Quantus' ``ROAD`` is another quantity: per percentage, the *accuracy* (argmax equal to the
  label) once the most relevant pixels are removed (MoRF only, no LeRF, no probabilities).
  Computed here from camavg's own MoRF images (``Road`` on the NumPy backend) it equals
  Quantus' over the same images: the two imputations agree (their images' largest difference
  is printed too);
- Quantus keeps the first batch's scores only: the same 16 images with ``batch_size=8`` give
  the accuracy of images 0-7, with ``batch_size=16`` that of all 16;
- on RGB images (a one-channel map broadcast over 3 channels) its imputation indexes past its
  mask and raises ``IndexError``: its tests use single-channel images only.

Not part of the test suite: Quantus pins other versions of the project's libraries, so it is
installed into a private directory, appended to ``sys.path`` after site-packages. Without it
the script says so and exits 0.
"""

from __future__ import annotations

import importlib.util
import os
import sys

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
    if os.environ.get("CAMAVG_QUANTUS_DIR"):
        sys.path.append(os.environ["CAMAVG_QUANTUS_DIR"])  # after site-packages: never its pins
    if importlib.util.find_spec("quantus") is None:
        print("Quantus is not installed; skipped (see this script's docstring)")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
