"""How the peers' deletion and insertion rules move the numbers, one rule at a time, on the same
inputs (docs/faithfulness-curves.md pastes this script's output).

    python -m benchmarks.peer_curves

NumPy only, a second. The model is a seeded linear softmax over 3 classes on 16 x 16 RGB images
in [0, 1] (P = 256); the CAMs are rounded to one decimal, so they hold ties. camavg's numbers
come from its own ``Deletion``/``Insertion`` perturbations on the NumPy backend; each peer row
changes one rule of camavg's (as read from the peer's code: xplique 2.0.2
``metrics/fidelity.py``, RISE's ``evaluation.py``; torchcam's and Quantus' rules as issue 22
reads them) and prints the mean AUC beside camavg's.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from camavg_core.backends import resolve_backend
from camavg_core.perturbations import Deletion, Insertion, auc_terms, pixel_counts

N, SIZE, CLASSES = 8, 16, 3
BACKEND = resolve_backend("numpy")


def problem(height=SIZE, width=SIZE):
    rng = np.random.default_rng(0)
    images = rng.random((N, height, width, 3))
    cams = np.round(rng.random((N, height, width)), 1)
    weights = rng.normal(0, 0.5, (height * width * 3, CLASSES))
    labels = np.argmax(images.reshape(N, -1) @ weights, axis=1)
    return images, cams, weights, labels


def logits(x, weights):
    return x.reshape(len(x), -1) @ weights


def probabilities(x, weights):
    z = logits(x, weights)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def camavg_auc(perturbation, images, cams, weights, labels, space=probabilities):
    """camavg's mean AUC: its perturbation's steps on the NumPy backend, Y_c in the reused place."""
    rows = np.arange(N)
    ranks_and_base = perturbation.prepare(BACKEND, images, cams[..., None])
    parameters = perturbation.parameters(cams[0].size)
    steps = np.stack([space(perturbation.apply(BACKEND, images, ranks_and_base, row), weights)[rows, labels]
                      for row in parameters])
    y_c = space(images, weights)[rows, labels]
    return float(auc_terms(perturbation.curve(y_c, steps)).mean())


def curve_auc(kind, images, cams, weights, labels, counts, *, base=None, order="stable",
              space=probabilities, fractions=None, rule="unit"):
    """A peer's mean AUC: ``counts`` pixels per point, ties ``order``ed "stable" (row-major)
    or "reversed" (``argsort(...)[::-1]``), trapezoid over fractions in [0, 1] ("unit") or with
    dx = 1 ("dx1")."""
    n, height, width, channels = images.shape
    pixels = height * width
    base = np.zeros_like(images) if base is None else base
    flat_cams = cams.reshape(n, pixels)
    if order == "stable":
        ranking = np.argsort(-flat_cams, axis=1, kind="stable")
    else:
        ranking = np.argsort(flat_cams, axis=1, kind="stable")[:, ::-1]
    curves = np.empty((n, len(counts)))
    for i, k in enumerate(counts):
        chosen = ranking[:, :k]
        start, end = (images, base) if kind == "deletion" else (base, images)
        x = start.reshape(n, pixels, channels).copy()
        np.put_along_axis(x, chosen[..., None], np.take_along_axis(end.reshape(n, pixels, channels), chosen[..., None], axis=1), axis=1)
        curves[:, i] = space(x.reshape(images.shape), weights)[np.arange(n), labels]
    if rule == "dx1":
        return float(np.trapezoid(curves, dx=1.0, axis=1).mean())
    x_axis = np.linspace(0, 1, len(counts)) if fractions is None else fractions
    return float(np.trapezoid(curves, x=x_axis, axis=1).mean())


def rise_blur(images):
    """RISE's insertion start: its 11 x 11 kernel (SciPy's gaussian_filter of a centred delta,
    sigma 5, reflect), applied by conv2d with zero padding 5."""
    delta = np.zeros((11, 11))
    delta[5, 5] = 1.0
    kernel = gaussian_filter(delta, 5)
    padded = np.pad(images, ((0, 0), (5, 5), (5, 5), (0, 0)))
    out = np.zeros_like(images)
    for dy in range(11):
        for dx in range(11):
            out += kernel[dy, dx] * padded[:, dy : dy + images.shape[1], dx : dx + images.shape[2]]
    return out


def main() -> None:
    images, cams, weights, labels = problem()
    pixels = SIZE * SIZE
    tens = pixel_counts(pixels, 10)
    ours = {kind: camavg_auc(make(), images, cams, weights, labels) for kind, make in
            (("deletion", Deletion), ("insertion", Insertion))}
    print(f"camavg: deletion {ours['deletion']:.4f}, insertion {ours['insertion']:.4f} "
          f"(steps 10, baseline 0, probabilities, stable ties, trapezoid over [0, 1]; N = {N}, P = {pixels})")

    for kind in ours:  # the peer rows' machinery reproduces camavg's rules before it changes one
        assert abs(curve_auc(kind, images, cams, weights, labels, tens) - ours[kind]) < 1e-12

    def row(label, kind, value):
        print(f"  {label:<66} {kind:<9} {value:.4f}  ({value - ours[kind]:+.4f})")

    row("score space: logits (xplique raw outputs, torchcam's default)", "deletion",
        camavg_auc(Deletion(), images, cams, weights, labels, space=logits))
    row("ties reversed, argsort(...)[::-1] (xplique, RISE)", "deletion",
        curve_auc("deletion", images, cams, weights, labels, tens, order="reversed"))
    step = math.ceil(pixels / 20)
    counts = np.minimum(np.arange(21) * step, pixels)
    row(f"torchcam: 20 steps of ceil(P / 20) = {step} pixels, x = k / P", "deletion",
        curve_auc("deletion", images, cams, weights, labels, counts, fractions=counts / pixels))
    row("Quantus: baseline 'black' = each image's minimum", "deletion",
        curve_auc("deletion", images, cams, weights, labels, tens, base=np.broadcast_to(
            images.min(axis=(1, 2, 3), keepdims=True), images.shape)))
    row("RISE: deletion to 0 of the normalised tensor (the mean colour)", "deletion",
        curve_auc("deletion", images, cams, weights, labels, tens, base=np.broadcast_to(
            images.mean(axis=(0, 1, 2), keepdims=True), images.shape)))
    all_pixels = np.arange(pixels + 1)
    row("Quantus: one pixel per step, np.trapz with dx = 1 (P = 256 passes)", "deletion",
        curve_auc("deletion", images, cams, weights, labels, all_pixels, rule="dx1"))
    ours_blur = camavg_auc(Insertion(baseline="blur"), images, cams, weights, labels)
    row("camavg: insertion from \"blur\" (11 taps, sigma 5, reflect border)", "insertion", ours_blur)
    row("RISE: insertion from its blur (its kernel, zero padding)", "insertion",
        curve_auc("insertion", images, cams, weights, labels, tens, base=rise_blur(images)))

    # xplique's integer linspace against k_i = floor(i * floor(P f) / K): P = 164, K = 20
    images, cams, weights, labels = problem(4, 41)
    ours_164 = camavg_auc(Deletion(steps=20), images, cams, weights, labels)
    linspace = np.linspace(0, 164, 21, dtype=np.int32)
    theirs_164 = curve_auc("deletion", images, cams, weights, labels, linspace)
    differ = [int(i) for i in np.flatnonzero(linspace != pixel_counts(164, 20))]
    print(f"P = 164 (4 x 41), steps 20: counts differ at i = {differ} "
          f"(i = 15: xplique {linspace[15]}, camavg {pixel_counts(164, 20)[15]}); "
          f"deletion {ours_164:.6f} against {theirs_164:.6f} ({theirs_164 - ours_164:+.1e})")


if __name__ == "__main__":
    main()
