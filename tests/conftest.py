"""Strict numerics for every test: one thread (fast and deterministic here), deterministic algorithms."""

import torch

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
