"""Image readers: the standard file formats, and a clear error for every way a file can be wrong.

All files are written by the tests themselves (a few tiny images), never downloaded.
"""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.image_data import CIFAR_FILES, IDX_FILES, DataFileError


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = {1: 2049, 3: 2051}[array.ndim] if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def mnist_dir(tmp_path, rng):
    """A tiny MNIST-format directory: 12 train and 5 test images of 28×28."""
    for split, n in (("train", 12), ("test", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        img_file, lab_file = IDX_FILES[split]
        (tmp_path / img_file).write_bytes(gzip.compress(idx_bytes(images)))
        (tmp_path / lab_file).write_bytes(gzip.compress(idx_bytes(labels)))
    return tmp_path


def test_reads_idx_files_exactly(mnist_dir):
    raw = np.frombuffer(gzip.decompress((mnist_dir / IDX_FILES["train"][0]).read_bytes())[16:], np.uint8)
    images, labels = dl.read_mnist(mnist_dir, "train")
    assert images.shape == (12, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (12,) and labels.dtype == torch.long
    # 0..255 maps linearly onto [−1, 1].
    torch.testing.assert_close(images.flatten(), torch.from_numpy(raw.astype(np.float32)) / 127.5 - 1)
    test_images, _ = dl.load_images("fashion-mnist", mnist_dir, split="test")
    assert test_images.shape == (5, 1, 28, 28)


def test_missing_directory_says_where_and_how_to_get_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*train-images-idx3-ubyte\.gz.*download"):
        dl.load_images("mnist", tmp_path / "nowhere")


def test_missing_file_is_listed(mnist_dir):
    (mnist_dir / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks 1 of the expected files: train-labels-idx1-ubyte\.gz") as err:
        dl.read_mnist(mnist_dir, "train")
    assert "train-images" not in str(err.value).split("files:")[1].split(".")[0]
    assert "download" in str(err.value)


def test_wrong_magic_number(mnist_dir, rng):
    labels = rng.integers(0, 10, 12, dtype=np.uint8)
    (mnist_dir / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels, magic=0x1F8B0808)))
    with pytest.raises(DataFileError, match="magic number"):
        dl.read_mnist(mnist_dir, "train")


def test_truncated_gzip_stream(mnist_dir):
    path = mnist_dir / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="truncated or not a valid gzip"):
        dl.read_mnist(mnist_dir, "train")


def test_truncated_payload_inside_a_valid_gzip(mnist_dir):
    path = mnist_dir / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataFileError, match="is truncated.*header declares shape"):
        dl.read_mnist(mnist_dir, "train")


def test_corrupt_gzip_fails_its_checksum(mnist_dir):
    path = mnist_dir / "train-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # damage the stored length/CRC
    path.write_bytes(bytes(data))
    with pytest.raises(DataFileError):
        dl.read_mnist(mnist_dir, "train")


def test_images_and_labels_must_agree(mnist_dir, rng):
    (mnist_dir / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(rng.integers(0, 10, 11, dtype=np.uint8))))
    with pytest.raises(DataFileError, match="12 images but 11 labels"):
        dl.read_mnist(mnist_dir, "train")


def write_cifar_batch(path, rng, n=4):
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def test_reads_cifar_batches(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [write_cifar_batch(folder / f, rng) for f in CIFAR_FILES["train"]]
    write_cifar_batch(folder / "test_batch", rng)
    images, labels = dl.load_images("cifar10", tmp_path)
    assert images.shape == (20, 3, 32, 32) and labels.shape == (20,)
    first = torch.from_numpy(batches[0][b"data"][0].reshape(3, 32, 32).astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(images[0], first)
    assert labels.tolist()[:4] == [int(v) for v in batches[0][b"labels"]]


def test_cifar_missing_and_truncated_files(tmp_path, rng):
    for f in CIFAR_FILES["train"][:3]:
        write_cifar_batch(tmp_path / f, rng)
    with pytest.raises(FileNotFoundError, match="data_batch_4, data_batch_5.*cifar-10-python"):
        dl.read_cifar10(tmp_path, "train")
    for f in CIFAR_FILES["train"][3:]:
        write_cifar_batch(tmp_path / f, rng)
    path = tmp_path / "data_batch_2"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataFileError, match="data_batch_2 is truncated or corrupt"):
        dl.read_cifar10(tmp_path, "train")


def test_cifar_reader_refuses_foreign_pickles(tmp_path, rng):
    for f in CIFAR_FILES["test"]:
        (tmp_path / f).write_bytes(pickle.dumps({b"data": print, b"labels": []}))
    with pytest.raises(DataFileError, match="refusing to unpickle builtins.print"):
        dl.read_cifar10(tmp_path, "test")


def test_digits_split_is_fixed_and_disjoint():
    train, train_labels = dl.digits_8x8(split="train")
    test, _ = dl.digits_8x8(split="test")
    every, _ = dl.digits_8x8()
    assert train.shape == (1297, 1, 8, 8) and test.shape == (500, 1, 8, 8)
    assert torch.equal(dl.digits_8x8(split="train")[0], train)
    # The two halves partition the full set (as multisets of images).
    assert torch.equal(torch.cat([train, test]).flatten(1).sum(0), every.flatten(1).sum(0))
    assert set(train_labels.tolist()) == set(range(10))


def test_bad_names_list_the_choices(tmp_path):
    with pytest.raises(ValueError, match="choose one of: digits8, mnist, fashion-mnist, cifar10"):
        dl.load_images("mnsit")
    with pytest.raises(ValueError, match="choose one of: train, test"):
        dl.load_images("digits8", split="val")
    with pytest.raises(ValueError, match="needs root="):
        dl.load_images("mnist")
