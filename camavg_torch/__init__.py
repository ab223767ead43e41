"""camavg_torch: Average Drop, Average Increase and Average Gain for PyTorch models.

The PyTorch backend of camavg's array protocol (:mod:`camavg_torch.backend`, loaded by
``camavg_core`` when it first sees a ``torch.Tensor``) and ``AveragesCam`` for any
``nn.Module`` or callable of a batch, with pytorch-grad-cam's targets and torchcam's CAM lists.

>>> import torch
>>> from camavg_torch import avg_drop
>>> avg_drop(torch.tensor([0.8, 0.5]), torch.tensor([0.2, 0.6]))  # (0.6 / 0.8 + 0) / 2
37.5...
"""

from camavg_core import Result, avg_drop, avg_gain, avg_increase, summarize
from camavg_torch.averages import AveragesCam
from camavg_torch.backend import TorchBackend
from camavg_torch.scores import CategoricalScore

__all__ = ["AveragesCam", "CategoricalScore", "Result", "TorchBackend", "avg_drop", "avg_gain", "avg_increase", "summarize"]
