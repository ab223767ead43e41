"""Masking: ``inputs * cams`` broadcast over channels, with and without resizing the CAMs.

Per backend and image size, 64 images; CAMs either at the inputs' size or at Grad-CAM's
coarse size (size / 32), which are resized bilinearly first. ``apply_cams`` adds the checks
(counts, shapes, range, finiteness) that run on the host before a compiled pass.
"""

from __future__ import annotations

import numpy as np

from . import BACKENDS, block, compiled, require_backend, to_backend

N_IMAGES = 64


class MaskInputs:
    params = (BACKENDS, [64, 224], ["full", "coarse"])
    param_names = ["backend", "size", "cams"]

    def setup(self, backend, size, cams):
        from camavg_core.masking import mask_inputs

        bk = require_backend(backend)
        rng = np.random.default_rng(0)
        cam_size = size if cams == "full" else size // 32
        images = rng.uniform(0, 1, (N_IMAGES, size, size, 3)).astype(np.float32)
        maps = rng.uniform(0, 1, (N_IMAGES, cam_size, cam_size)).astype(np.float32)
        self.images, self.cams = to_backend(backend, images), to_backend(backend, maps)
        self.mask = compiled(backend, lambda x, c: mask_inputs(x, c, backend=bk))
        self.mask_normalised = compiled(backend, lambda x, c: mask_inputs(x, c, normalize=True, backend=bk))
        block(self.mask(self.images, self.cams))
        block(self.mask_normalised(self.images, self.cams))
        from camavg_core import apply_cams

        block(apply_cams(self.images, self.cams))  # its eager ops compile on the first call

    def time_mask_inputs(self, backend, size, cams):
        block(self.mask(self.images, self.cams))

    def time_mask_inputs_normalised(self, backend, size, cams):
        block(self.mask_normalised(self.images, self.cams))
        from camavg_core import apply_cams

        block(apply_cams(self.images, self.cams))  # its eager ops compile on the first call

    def time_apply_cams_checked(self, backend, size, cams):
        from camavg_core import apply_cams

        block(apply_cams(self.images, self.cams))
