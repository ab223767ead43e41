"""camavg beside torchcam 0.5 and pytorch-grad-cam 1.5 on the same model, images and maps
(docs/comparison.md).

    python -m pip install --no-deps --target /tmp/peers "torchcam==0.5.*" "grad-cam==1.5.*"
    PYTHONPATH=.:/tmp/peers python benchmarks/peer_torch.py

A small CNN ending in an ``nn.Linear`` (logits, as PyTorch classifiers do), trained for a few
seconds to tell the colour of a square on noise. The maps: torchcam's own Grad-CAM (its
extractor's min-max normalised maps at the last conv's 4x4, resized bilinearly to the images
for the libraries that need maps at the input size, as torchcam's metric and camavg resize
them), seeded random maps, and a map of ones.

- torchcam: its real ``ClassificationMetric.update``/``summary``, fed these maps through a
  stand-in extractor that returns them (so every library masks with the same maps), scored on
  the logits (``logits_fn=None``, its default) and on the softmax.
- pytorch-grad-cam: its package ``__init__`` imports torchvision, which does not import beside
  torch 2.13, so its two metric files (``metrics/perturbation_confidence.py`` and
  ``metrics/cam_mult_image.py``) are loaded from the installed package by path, and its two
  target classes are copied here from ``utils/model_targets.py`` as written there.
- camavg: ``camavg_torch.AveragesCam``.

Not part of the test suite; without the peers the script says so and exits 0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types

import numpy as np

SIZE, CLASSES, N_TRAIN, N_EVAL = 16, 3, 384, 64


def make_images(rng, n):
    """Grey noise with a coloured 5x5 square at a random place; the square's colour is the class."""
    labels = rng.integers(0, CLASSES, size=n)
    images = rng.uniform(0.0, 0.4, size=(n, 3, SIZE, SIZE)).astype("float32")
    for image, label in zip(images, labels):
        top, left = rng.integers(0, SIZE - 5, size=2)
        image[label, top : top + 5, left : left + 5] += 0.6
    return np.clip(images, 0.0, 1.0), labels


def trained_model(torch):
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES),
    )
    images, labels = make_images(np.random.default_rng(1), N_TRAIN)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(15):  # a short training: confident, but not saturated (Y well below 1)
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval()


def load_pytorch_grad_cam_metrics():
    """``DropInConfidence`` and ``IncreaseInConfidence`` from the installed grad-cam files."""
    spec = importlib.util.find_spec("pytorch_grad_cam")
    if spec is None:
        return None
    root = spec.submodule_search_locations[0]
    if importlib.util.find_spec("cv2") is None:  # imported at the top, used only by 'auto' percentiles
        sys.modules["cv2"] = types.ModuleType("cv2")
    for package in ("pytorch_grad_cam", "pytorch_grad_cam.metrics"):  # skip the torchvision __init__
        module = types.ModuleType(package)
        module.__path__ = [root if package == "pytorch_grad_cam" else f"{root}/metrics"]
        sys.modules[package] = module
    for name in ("perturbation_confidence", "cam_mult_image"):
        full = f"pytorch_grad_cam.metrics.{name}"
        file_spec = importlib.util.spec_from_file_location(full, f"{root}/metrics/{name}.py")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[full] = module
        file_spec.loader.exec_module(module)
    return sys.modules["pytorch_grad_cam.metrics.cam_mult_image"]


def main() -> None:
    try:
        import torch
        from torchcam.methods import GradCAM
        from torchcam.metrics import ClassificationMetric
    except ImportError as error:
        print(f"torchcam is not installed ({error}); skipped")
        return
    grad_cam_metrics = load_pytorch_grad_cam_metrics()
    if grad_cam_metrics is None:
        print("pytorch-grad-cam is not installed; skipped")
        return
    from importlib.metadata import version

    from camavg_torch import AveragesCam, CategoricalScore

    class ClassifierOutputTarget:  # pytorch_grad_cam/utils/model_targets.py, as written there
        def __init__(self, category):
            self.category = category

        def __call__(self, model_output):
            if len(model_output.shape) == 1:
                return model_output[self.category]
            return model_output[:, self.category]

    class ClassifierOutputSoftmaxTarget:  # the same file, as written there
        def __init__(self, category):
            self.category = category

        def __call__(self, model_output):
            if len(model_output.shape) == 1:
                return torch.softmax(model_output, dim=-1)[self.category]
            return torch.softmax(model_output, dim=-1)[:, self.category]

    class FixedCams:
        """A torchcam extractor that returns given maps: torchcam's metric masks with them."""

        def __init__(self, model, cams):
            self.model, self.cams = model, cams

        def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs):
            return [self.cams]

        def fuse_cams(self, cams):
            return cams[0]

        def _hooks_off(self):
            return contextlib.nullcontext()

    model = trained_model(torch)
    images, labels = make_images(np.random.default_rng(2), N_EVAL)
    x = torch.from_numpy(images)
    with torch.no_grad():
        accuracy = float((model(x).argmax(1).numpy() == labels).mean())
    with GradCAM(model, target_layer=model[3]) as extractor:
        small = extractor(labels.tolist(), model(x))[0].detach()  # (N, 4, 4), min-max normalised
    model.eval()
    full = torch.nn.functional.interpolate(small[:, None], (SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    maps = {
        "gradcam": full.numpy().astype(np.float32),
        "random": np.random.default_rng(3).random((N_EVAL, SIZE, SIZE)).astype(np.float32),
        "ones": np.ones((N_EVAL, SIZE, SIZE), np.float32),
    }
    softmax = camavg = AveragesCam(model, images, activation="softmax")
    on_logits = AveragesCam(model, images, activation="identity")  # increase only: any score
    score = CategoricalScore(labels)
    logit_targets = [ClassifierOutputTarget(int(c)) for c in labels]
    softmax_targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in labels]

    print(f"torch {torch.__version__}, torchcam {version('torchcam')}, grad-cam {version('grad-cam')}; "
          f"{N_EVAL} images {SIZE}x{SIZE}, {CLASSES} classes, accuracy {accuracy:.2f}; all in percent")
    print(f"{'maps':8} {'library, scores':42} {'drop':>9} {'increase':>9} {'gain':>8}")
    for name, cams in maps.items():
        rows = []
        result = camavg.evaluate(cams, score)
        rows.append(("camavg, softmax", result.average_drop, result.average_increase, result.average_gain))
        y_c = result.y_c
        for label, logits_fn in (("torchcam, logits (default)", None), ("torchcam, softmax", lambda z: torch.softmax(z, -1))):
            metric = ClassificationMetric(FixedCams(model, torch.from_numpy(cams)), logits_fn)
            metric.update(x, class_idx=labels.tolist())
            summary = metric.summary()
            rows.append((label, 100 * summary["avg_drop"], 100 * summary["conf_increase"], None))
        for label, targets in (("pytorch-grad-cam, logits (ClassifierOutputTarget)", logit_targets),
                               ("pytorch-grad-cam, softmax (...SoftmaxTarget)", softmax_targets)):
            drop = grad_cam_metrics.DropInConfidence()(x, cams, targets, model)
            increase = grad_cam_metrics.IncreaseInConfidence()(x, cams, targets, model)
            rows.append((label, 100 * float(np.mean(drop)), 100 * float(np.mean(increase)), None))
            if "softmax" in label:  # its absolute drop, divided by Y as the paper does
                relative = drop / (y_c.astype(np.float32) + 1e-7)
                rows.append(("  the same, each term divided by Y + 1e-7", 100 * float(np.mean(relative)), None, None))
        rows.append(("camavg, logits (increase only)", None, on_logits.average_increase(cams, score), None))
        for label, drop, increase, gain in rows:
            cells = [f"{v:9.4f}" if v is not None else f"{'-':>9}" for v in (drop, increase, gain)]
            print(f"{name:8} {label:50} {' '.join(cells)}")
    del softmax


if __name__ == "__main__":
    main()
