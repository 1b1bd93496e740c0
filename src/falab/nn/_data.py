"""Offline real data sets with a fixed train / validation / test split (the validation split selects models).

* ``digits``: scikit-learn's 8x8 handwritten digits (1797 images, bundled with scikit-learn), pixel values / 16,
  stratified split (``val_fraction`` and ``test_fraction`` of the data, ``data_seed``).
* ``mnist1d``: MNIST-1D (Greydanus 2020) generated locally with ``mnist1d.data.make_dataset(get_dataset_args())``
  (4000 train + 1000 test sequences of length 40; its downloader is never used). Its own test split is the test set;
  ``val_fraction`` of its training split (stratified) is the validation set.

* ``pystdlib``: character-level language modelling on the Python standard library's own source files (every machine
  with Python has them offline; ``sysconfig.get_paths()["stdlib"]``): fixed file lists for train / validation / test
  (:data:`PYSTDLIB_FILES`), characters mapped to 97 symbols (printable ASCII, newline, one "other"), cut into
  non-overlapping windows of ``PYSTDLIB_CONTEXT + 1`` characters (inputs: the first ``PYSTDLIB_CONTEXT``, targets:
  the next character at every position). The text depends on the Python version: :func:`pystdlib_source` records it.

Inputs are standardised with training-split statistics only (``standardize=False`` keeps MNIST-1D's own scale, as its
reference notebooks train on it). Shapes: flat ``(N, d)`` for MLPs; ``image_shape`` gives
the shape for CNNs (``(1, 8, 8)`` / ``(1, 40)``).
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_seed, invalid

DATASETS = ("digits", "mnist1d", "pystdlib")
# fixed lists of standard-library files (train / validation / test), disjoint
PYSTDLIB_FILES: dict[str, tuple[str, ...]] = {
    "train": ("argparse.py", "calendar.py", "csv.py", "fractions.py", "heapq.py", "random.py", "statistics.py",
              "textwrap.py"),
    "val": ("string.py", "shlex.py"),
    "test": ("fnmatch.py", "glob.py", "copy.py", "numbers.py"),
}
PYSTDLIB_CONTEXT = 48
PYSTDLIB_VOCAB = 97  # printable ASCII 32..126, newline, other
# the held-out fractions together leave at least 40 % of the data for training
MAX_HELD_OUT = 0.6


@dataclass(frozen=True)
class Split:
    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    image_shape: tuple[int, ...]
    n_classes: int
    task: str = "classify"  # or "lm": next-character prediction at every position

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def _stratified(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held-out) with ``fraction`` of every class held out."""
    held, rest = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(rest)), np.sort(np.concatenate(held))


def _encode(text: str) -> np.ndarray:
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    out = np.where((codes >= 32) & (codes <= 126), codes - 32, PYSTDLIB_VOCAB - 1)
    return np.where(codes == 10, 95, out)


def pystdlib_source() -> dict[str, object]:
    """Where the ``pystdlib`` text comes from: the stdlib directory, the Python version, the files of each split and
    the number of characters and the SHA-256 of each split's text (so a report names exactly what was modelled)."""
    import hashlib
    import platform
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    info: dict[str, object] = {"stdlib": str(root), "python": platform.python_version(), "context": PYSTDLIB_CONTEXT}
    for part, files in PYSTDLIB_FILES.items():
        text = "".join((root / f).read_text(encoding="utf-8") for f in files)
        info[part] = {"files": list(files), "chars": len(text),
                      "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]}
    return info


def _windows(part: str) -> np.ndarray:
    import sysconfig
    from pathlib import Path

    root = Path(sysconfig.get_paths()["stdlib"])
    missing = [f for f in PYSTDLIB_FILES[part] if not (root / f).is_file()]
    if missing:
        raise invalid("dataset", "pystdlib", f"the standard library's source files ({', '.join(missing)} not found "
                      f"in {root})")
    codes = _encode("".join((root / f).read_text(encoding="utf-8") for f in PYSTDLIB_FILES[part]))
    w = PYSTDLIB_CONTEXT + 1
    n = (len(codes) - 1) // PYSTDLIB_CONTEXT
    idx = np.arange(n)[:, None] * PYSTDLIB_CONTEXT + np.arange(w)[None, :]
    return codes[idx[idx[:, -1] < len(codes)].reshape(-1, w)]


@functools.lru_cache(maxsize=1)
def _lm_split() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _windows("train"), _windows("val"), _windows("test")


@functools.lru_cache(maxsize=2)
def _raw(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data.astype(np.float64) / 16.0, d.target.astype(np.int64), None, None
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    return (np.asarray(d["x"], np.float64), np.asarray(d["y"], np.int64),
            np.asarray(d["x_test"], np.float64), np.asarray(d["y_test"], np.int64))


def load_split(name: str, *, val_fraction: float = 0.2, test_fraction: float = 0.2, data_seed: int = 0,
               dtype: torch.dtype = torch.float32, standardize: bool = True) -> Split:
    """The fixed split of data set ``name`` (see the module docstring). For ``pystdlib`` the fractions and the seed do
    not apply (fixed file lists); its ``x_*`` are integer windows ``(N, context + 1)`` and ``y_*`` their last
    characters (unused: the targets are the shifted windows)."""
    check_choice("dataset", name, DATASETS)
    if name == "pystdlib":
        tr, va, te = _lm_split()
        lt = functools.partial(torch.as_tensor, dtype=torch.int64)
        return Split(name, lt(tr), lt(tr[:, -1]), lt(va), lt(va[:, -1]), lt(te), lt(te[:, -1]),
                     (PYSTDLIB_CONTEXT,), PYSTDLIB_VOCAB, task="lm")
    for field, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 < value < 0.5:
            raise invalid(f"split.{field}", value, "a number in (0, 0.5)")
    if val_fraction + test_fraction > MAX_HELD_OUT + 1e-12:
        raise invalid("split.val_fraction + test_fraction", round(val_fraction + test_fraction, 6),
                      f"at most {MAX_HELD_OUT} (at least {1 - MAX_HELD_OUT:.0%} of the data left for training)")
    check_seed("split.data_seed", data_seed)
    x, y, x_test, y_test = _raw(name)
    rng = np.random.default_rng(data_seed)
    if x_test is None:
        rest, test = _stratified(y, test_fraction, rng)
        x_test, y_test = x[test], y[test]
        x, y = x[rest], y[rest]
    assert y_test is not None
    train, val = _stratified(y, val_fraction / (1.0 - (test_fraction if name == "digits" else 0.0)), rng)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
    if not standardize:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    t = functools.partial(torch.as_tensor, dtype=dtype)
    shape = (1, 8, 8) if name == "digits" else (1, x.shape[1])
    return Split(
        name,
        t((x[train] - mean) / std), torch.as_tensor(y[train]),
        t((x[val] - mean) / std), torch.as_tensor(y[val]),
        t((x_test - mean) / std), torch.as_tensor(y_test),
        shape, int(max(y.max(), y_test.max()) + 1),
    )
