"""Image data: scikit-learn's bundled 8×8 digits (always offline), and MNIST, Fashion-MNIST and
CIFAR-10 read from their standard files in a directory the user names.

Every loader returns ``(images, labels)``: images float32 ``(N, C, H, W)`` in [−1, 1], labels long
``(N,)``. Files are checked, not trusted: a missing directory or file raises ``FileNotFoundError``
saying what is missing and how to get it; a wrong magic number, a truncated or otherwise corrupt
file raises :class:`DataFileError`.

=================  ============  ==========================================================
name               shape         files in ``root``
=================  ============  ==========================================================
``digits8``        1×8×8         none: bundled with scikit-learn (1,297 train / 500 test)
``mnist``          1×28×28       ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
``fashion-mnist``  1×28×28       the same four names (Zalando's Fashion-MNIST)
``cifar10``        3×32×32       ``data_batch_1`` … ``data_batch_5``, ``test_batch`` (python
                                 pickles, optionally inside ``cifar-10-batches-py/``)
=================  ============  ==========================================================
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from .validation import check_choice

DATASETS = ("digits8", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "test")
IMAGE_SHAPES = {"digits8": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
CLASS_NAMES = {
    "digits8": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_HOW_TO_GET = {
    "mnist": "download the four .gz files from https://yann.lecun.com/exdb/mnist/ (or a mirror), or call "
             "load_images('mnist', root, download=True) where torchvision and a network are available",
    "fashion-mnist": "download the four .gz files from https://github.com/zalandoresearch/fashion-mnist "
                     "(data/fashion/), or call load_images('fashion-mnist', root, download=True) where "
                     "torchvision and a network are available",
    "cifar10": "download and untar https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, or call "
               "load_images('cifar10', root, download=True) where torchvision and a network are available",
}
_IDX_MAGIC = {2049: 1, 2051: 3}  # magic number (0x0000 08 ndim, unsigned bytes) → ndim
_DIGITS_TEST_SIZE = 500


class DataFileError(ValueError):
    """A data file exists but is not what it should be (wrong magic number, truncated, corrupt)."""


def digits_8x8(*, digit: int | None = None, split: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 bundled 8×8 handwritten digits (no download).

    Args:
        digit: keep only this class (0–9), or all when None.
        split: ``"train"`` (1,297 images) or ``"test"`` (500), a fixed seeded split; None for all.

    Returns:
        ``(images, labels)``: images float32 of shape ``(N, 1, 8, 8)`` scaled from 0..16 to [−1, 1],
        labels long of shape ``(N,)``.
    """
    if digit is not None and digit not in range(10):
        raise ValueError(f"digit must be one of 0..9 or None, got {digit!r}")
    if split is not None:
        check_choice("split", split, SPLITS)
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 8.0 - 1.0  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target).long()
    if split is not None:
        order = torch.from_numpy(np.random.default_rng(0).permutation(len(labels)))
        keep = order[_DIGITS_TEST_SIZE:] if split == "train" else order[:_DIGITS_TEST_SIZE]
        images, labels = images[keep], labels[keep]
    if digit is not None:
        keep = labels == digit
        images, labels = images[keep], labels[keep]
    return images, labels


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) of unsigned bytes, checking magic number, header and size.

    Returns:
        uint8 array of the shape the header declares, e.g. ``(60000, 28, 28)`` or ``(60000,)``.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        raise DataFileError(f"{path} is truncated or not a valid gzip file ({err}); download it again") from err
    if len(raw) < 4:
        raise DataFileError(f"{path} is truncated: {len(raw)} bytes, shorter than the 4-byte IDX magic number")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in _IDX_MAGIC:
        raise DataFileError(
            f"{path} has magic number {magic} (0x{magic:08x}); an IDX file of images has 2051 and one of "
            f"labels 2049. Is it the right file, and was it decompressed twice or saved as HTML?"
        )
    ndim = _IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFileError(f"{path} is truncated inside its header ({len(raw)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataFileError(
            f"{path} is {what}: {len(raw):,} bytes after decompression, but its header declares shape "
            f"{shape}, i.e. {expected:,} bytes; download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _require_files(name: str, root: Path, files: tuple[str, ...]) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: data directory {root} does not exist; create it and put the files "
                                f"{', '.join(files)} there. To get them: {_HOW_TO_GET[name]}")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: {root} lacks {len(missing)} of the expected files: "
                                f"{', '.join(missing)}. To get them: {_HOW_TO_GET[name]}")


def read_mnist(root: str | Path, split: str = "train", *, name: str = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST or Fashion-MNIST (same file format) from the IDX ``.gz`` files in ``root``.

    Returns images float32 ``(N, 1, 28, 28)`` in [−1, 1] and labels long ``(N,)``.
    """
    check_choice("split", split, SPLITS)
    check_choice("IDX dataset", name, ("mnist", "fashion-mnist"))
    root = Path(root)
    images_file, labels_file = IDX_FILES[split]
    _require_files(name, root, IDX_FILES[split])
    images, labels = read_idx(root / images_file), read_idx(root / labels_file)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataFileError(f"{root}: expected a 3-D image file and a 1-D label file, got shapes "
                            f"{images.shape} and {labels.shape}; are the two files swapped?")
    if images.shape[0] != labels.shape[0]:
        raise DataFileError(f"{root}: {images.shape[0]} images but {labels.shape[0]} labels in the {split} split")
    if labels.size and labels.max() > 9:
        raise DataFileError(f"{root / labels_file}: labels must lie in 0..9, found {labels.max()}")
    return _to_model_range(images[:, None]), torch.from_numpy(labels.astype(np.int64))


class _CifarUnpickler(pickle.Unpickler):
    """Unpickle CIFAR-10 batches only: allow the NumPy array constructors and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"),
               ("_codecs", "encode")}  # how Python 3 pickles with protocol 2 store the array bytes

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataFileError(f"refusing to unpickle {module}.{name}: not part of a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _CifarUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except DataFileError:
        raise
    except Exception as err:  # pickle raises many kinds on damaged input
        raise DataFileError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}); download it again") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataFileError(f"{path} is not a CIFAR-10 python batch (no b'data' and b'labels' entries)")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != data.shape[0]:
        raise DataFileError(f"{path}: expected uint8 data of shape (N, 3072) with N labels, got data "
                            f"{data.dtype} {data.shape} and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_cifar10(root: str | Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from its python batches in ``root`` (or ``root/cifar-10-batches-py``).

    Returns images float32 ``(N, 3, 32, 32)`` in [−1, 1] and labels long ``(N,)``.
    """
    check_choice("split", split, SPLITS)
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    _require_files("cifar10", root, CIFAR_FILES[split])
    parts = [_read_cifar_batch(root / f) for f in CIFAR_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFileError(f"{root}: CIFAR-10 labels must lie in 0..9")
    return _to_model_range(images), torch.from_numpy(labels)


def _to_model_range(images: np.ndarray) -> torch.Tensor:
    """uint8 0..255 → float32 in [−1, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.float32)) / 127.5 - 1.0


def _torchvision_download(name: str, root: Path) -> Path:
    """Fetch the standard files with torchvision; return the directory that holds them."""
    try:
        import torchvision.datasets as tvd
    except ImportError as err:
        raise FileNotFoundError(f"{name}: download=True needs torchvision (pip install torchvision); "
                                f"otherwise {_HOW_TO_GET[name]}") from err
    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    for train in (True, False):
        cls(str(root), train=train, download=True)
    if name == "cifar10":
        return root / "cifar-10-batches-py"
    return root / cls.__name__ / "raw"


def load_images(name: str = "digits8", root: str | Path | None = None, *, split: str = "train",
                download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset by name (see the module table) as ``(images, labels)`` in [−1, 1].

    Args:
        name: ``digits8`` (offline, the default), ``mnist``, ``fashion-mnist`` or ``cifar10``.
        root: the directory holding the standard files (not needed for ``digits8``).
        split: ``train`` or ``test``.
        download: fetch missing files with torchvision into ``root`` (needs torchvision and a
            network, e.g. in Colab). The project itself never downloads at run time.
    """
    check_choice("dataset", name, DATASETS)
    check_choice("split", split, SPLITS)
    if name == "digits8":
        return digits_8x8(split=split)
    if root is None:
        raise ValueError(f"{name} needs root=, the directory with its files. To get them: {_HOW_TO_GET[name]}")
    root = Path(root).expanduser()
    if download:
        files = CIFAR_FILES[split] if name == "cifar10" else IDX_FILES[split]
        here = root / "cifar-10-batches-py" if name == "cifar10" and (root / "cifar-10-batches-py").is_dir() else root
        if not all((here / f).is_file() for f in files):
            root = _torchvision_download(name, root)
    if name == "cifar10":
        return read_cifar10(root, split)
    return read_mnist(root, split, name=name)
