"""Where batches live: one device, or split along the batch axis over every local device.

With more than one local device, each batch is placed with a ``NamedSharding`` over a one-axis
``"data"`` mesh, so ``jax.jit`` runs the masked forward pass data-parallel: every device gets
``batch_size / n_devices`` rows and the model's parameters, closed over by ``apply_fn``, are
replicated. Each sample's scores depend only on that sample, so the results equal the
single-device ones.

>>> placement = DataPlacement.local()
>>> placement.n_devices >= 1
True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


class DataPlacement(NamedTuple):
    """The devices batches go to, and their sharding (None on a single device)."""

    n_devices: int
    sharding: NamedSharding | None

    @classmethod
    def local(cls) -> "DataPlacement":
        """Every local device: a data mesh when there are several, plain placement otherwise."""
        devices = jax.local_devices()
        if len(devices) == 1:
            return cls(n_devices=1, sharding=None)
        mesh = Mesh(np.asarray(devices), (DATA_AXIS,))
        return cls(n_devices=len(devices), sharding=NamedSharding(mesh, PartitionSpec(DATA_AXIS)))

    def put(self, batch: Any) -> jax.Array:
        """A batch on the device(s): split along its first axis when sharded."""
        if self.sharding is None:
            return jax.device_put(batch)
        return jax.device_put(batch, self.sharding)
