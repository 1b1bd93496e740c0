"""P003's systems: the public constructors live in :mod:`falab.systems` (engine problems) and :mod:`falab.theory`
(inits (7)/(11)); this module keeps the experiments' import path."""

from __future__ import annotations

import torch

from ...systems import (
    autoencoder_data,
    autoencoder_problem,
    covariance_data,
    deep_scalar_system,
    scalar_params,
    scalar_system,
    scalar_thetas,
    theta_event,
)
from ...theory import init7, init11

DT = torch.float64

__all__ = ["DT", "autoencoder_data", "autoencoder_problem", "covariance_data", "deep_scalar_system", "init7",
           "init11", "scalar_params", "scalar_system", "scalar_thetas", "theta_event"]
