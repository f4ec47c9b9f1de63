"""Data sets (digits, CIFAR in torchvision's on-disk format, synthetic) and the sampler."""

import io
import pickle

import numpy as np
import pytest
import torch

from sgdthermo.nn.data import (
    CIFAR_STATS,
    BatchSampler,
    DataSet,
    balanced_subset,
    load_cifar,
    load_dataset,
    load_digits,
    synthetic,
)

# --------------------------------------------------------------------------- fake CIFAR


def _dump(path, obj):
    # The originals are Python-2 pickles (protocol 2) whose str keys read as bytes.
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(rng, n, k, label_key):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in np.arange(n) % k]
    return {b"batch_label": b"training batch", label_key: labels, b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


@pytest.fixture()
def cifar10_root(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _batch(rng, 20, 10, b"labels"))
    _dump(folder / "test_batch", _batch(rng, 10, 10, b"labels"))
    _dump(folder / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)],
                                    b"num_cases_per_batch": 20, b"num_vis": 3072})
    return tmp_path


@pytest.fixture()
def cifar100_root(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 300), ("test", 100)):
        d = _batch(rng, n, 100, b"fine_labels")
        d[b"coarse_labels"] = [v // 5 for v in d[b"fine_labels"]]
        _dump(folder / name, d)
    _dump(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    return tmp_path


def _raw_images(path):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    return d[b"data"].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0


def test_cifar10_format_shapes_and_normalisation(cifar10_root):
    ds = load_cifar(cifar10_root, "cifar10")
    assert isinstance(ds, DataSet) and ds.name == "cifar10"
    assert ds.train_x.shape == (100, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    assert (ds.num_classes, ds.in_channels, ds.image_size) == (10, 3, 32)
    assert int(ds.train_y.min()) == 0 and int(ds.train_y.max()) == 9
    assert ds.class_names == tuple(f"class{i}" for i in range(10))
    mean, std = CIFAR_STATS["cifar10"]
    assert mean == (0.4914, 0.4822, 0.4465) and std == (0.2023, 0.1994, 0.2010)
    # first image of data_batch_1, channel planes in RGB order, row-major
    raw = _raw_images(cifar10_root / "cifar-10-batches-py" / "data_batch_1")
    m = np.array(mean, dtype=np.float32).reshape(3, 1, 1)
    s = np.array(std, dtype=np.float32).reshape(3, 1, 1)
    np.testing.assert_allclose(ds.train_x[0].numpy(), (raw[0] - m) / s, rtol=1e-6, atol=1e-6)
    raw_test = _raw_images(cifar10_root / "cifar-10-batches-py" / "test_batch")
    np.testing.assert_allclose(ds.test_x[3].numpy(), (raw_test[3] - m) / s, rtol=1e-6, atol=1e-6)
    # pixel (c=1, h=2, w=5) is byte 1024 + 2*32 + 5 of the row
    with open(cifar10_root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][0]
    assert ds.train_x[0, 1, 2, 5].item() == pytest.approx((row[1024 + 69] / 255 - mean[1]) / std[1],
                                                         rel=1e-5)


def test_cifar100_and_balanced_subset(cifar100_root):
    ds = load_cifar(cifar100_root, "cifar100")
    assert ds.train_x.shape == (300, 3, 32, 32) and ds.num_classes == 100
    assert int(ds.test_y.max()) == 99 and ds.class_names[7] == "f7"
    mean, std = CIFAR_STATS["cifar100"]
    raw = _raw_images(cifar100_root / "cifar-100-python" / "train")
    m = np.array(mean, dtype=np.float32).reshape(3, 1, 1)
    s = np.array(std, dtype=np.float32).reshape(3, 1, 1)
    np.testing.assert_allclose(ds.train_x[11].numpy(), (raw[11] - m) / s, rtol=1e-6, atol=1e-6)
    sub = load_cifar(cifar100_root, "cifar100", samples_per_label=2, seed=3)
    assert sub.train_x.shape[0] == 200
    assert torch.equal(torch.bincount(sub.train_y, minlength=100), torch.full((100,), 2))
    assert sub.test_x.shape[0] == 100  # the test set stays complete
    again = load_cifar(cifar100_root, "cifar100", samples_per_label=2, seed=3)
    other = load_cifar(cifar100_root, "cifar100", samples_per_label=2, seed=4)
    assert torch.equal(sub.train_x, again.train_x)
    assert not torch.equal(sub.train_x, other.train_x)
    with pytest.raises(ValueError, match="class"):
        load_cifar(cifar100_root, "cifar100", samples_per_label=4)


def test_cifar_subset_matches_source_rows(cifar10_root):
    full = load_cifar(cifar10_root, "cifar10")
    sub = load_cifar(cifar10_root, "cifar10", samples_per_label=3, seed=0)
    keep = balanced_subset(full.train_y, 3, seed=0, num_classes=10)
    assert torch.equal(sub.train_x, full.train_x[torch.from_numpy(keep)])
    assert torch.equal(torch.bincount(sub.train_y), torch.full((10,), 3))


def test_cifar_python3_str_keys(tmp_path):
    """A pickle with str keys (torchvision-written or Python 3) reads the same."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = _batch(rng, 10, 10, b"labels")
        _dump(folder / name, {k.decode(): v for k, v in d.items()})
    ds = load_cifar(tmp_path, "cifar10")
    assert ds.train_x.shape == (50, 3, 32, 32) and ds.class_names is None


def test_cifar_missing_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar(tmp_path, "cifar10")
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", data_dir=tmp_path)
    with pytest.raises(ValueError, match="cifar10 or cifar100"):
        load_cifar(tmp_path, "cifar11")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="torchvision"):
            load_cifar(tmp_path, "cifar10", download=True)


def test_load_dataset_dispatch(cifar10_root):
    ds = load_dataset("CIFAR10", data_dir=cifar10_root, samples_per_label=2)
    assert ds.name == "cifar10" and ds.n_train == 20
    with pytest.raises(ValueError, match="digits, cifar10, cifar100, synthetic"):
        load_dataset("mnist")


# --------------------------------------------------------------------------- digits


def test_digits_fixed_stratified_split():
    ds = load_digits()
    assert (ds.n_train, ds.n_test) == (1347, 450)
    assert ds.train_x.shape[1:] == (1, 8, 8) and ds.in_channels == 1 and ds.image_size == 8
    # normalised with the train set's statistics
    assert abs(ds.train_x.mean().item()) < 1e-5 and ds.train_x.std().item() == pytest.approx(1, abs=1e-3)
    # stratified: every class ~25 % in the test set
    tr = torch.bincount(ds.train_y, minlength=10).float()
    te = torch.bincount(ds.test_y, minlength=10).float()
    assert ((te / (tr + te) - 0.25).abs() < 0.01).all()
    # fixed: same split every time; another seed gives another split
    again = load_digits()
    assert torch.equal(ds.train_x, again.train_x) and torch.equal(ds.test_y, again.test_y)
    other = load_digits(seed=1)
    assert not torch.equal(ds.test_x, other.test_x)
    # train and test are disjoint and cover the data set
    from sklearn.datasets import load_digits as sk
    n = len(sk().target)
    assert ds.n_train + ds.n_test == n
    sub = load_digits(samples_per_label=20)
    assert torch.equal(torch.bincount(sub.train_y), torch.full((10,), 20))
    assert torch.equal(sub.test_x, ds.test_x)


def test_digits_train_test_disjoint():
    from sklearn.datasets import load_digits as sk
    raw = torch.from_numpy(sk().images.reshape(-1, 64).astype(np.float32))
    ds = load_digits()
    mean, std = ds.mean[0], ds.std[0]
    back = lambda x: torch.round((x.reshape(-1, 64) * std + mean) * 16)  # noqa: E731
    key = lambda t: {tuple(r.tolist()) for r in t}  # noqa: E731
    tr, te = key(back(ds.train_x)), key(back(ds.test_x))
    assert tr | te <= key(raw)
    # the digits contain a few duplicate images, so allow a handful in both parts
    assert len(tr & te) < 10


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_learnable_and_seeded():
    ds = synthetic()
    assert ds.train_x.shape == (512, 1, 8, 8) and ds.test_x.shape == (256, 1, 8, 8)
    assert torch.equal(torch.bincount(ds.train_y), torch.full((4,), 128))
    # nearest-class-mean on the train means classifies the test set well
    means = torch.stack([ds.train_x[ds.train_y == c].mean(0) for c in range(4)]).flatten(1)
    pred = torch.cdist(ds.test_x.flatten(1), means).argmin(1)
    assert (pred == ds.test_y).float().mean().item() > 0.9
    assert torch.equal(synthetic().train_x, ds.train_x)
    assert not torch.equal(synthetic(seed=1).train_x, ds.train_x)
    rgb = synthetic(in_channels=3, image_size=32, num_classes=10, n_train=40, n_test=20)
    assert rgb.train_x.shape == (40, 3, 32, 32) and int(rgb.train_y.max()) == 9


def test_dataset_to_device():
    ds = load_dataset("synthetic", samples_per_label=10)
    assert ds.n_train == 40
    moved = ds.to("cpu")
    assert moved.device.type == "cpu" and torch.equal(moved.train_x, ds.train_x)


# --------------------------------------------------------------------------- sampler


def test_sampler_iid_with_replacement_and_reproducible():
    s = BatchSampler(50, 128, seed=3)
    b = s.next()
    assert b.shape == (128,) and b.dtype == torch.int64
    assert int(b.min()) >= 0 and int(b.max()) < 50
    assert len(torch.unique(b)) < 128  # with replacement (n < batch)
    t = BatchSampler(50, 128, seed=3)
    assert torch.equal(t.next(), b)
    assert not torch.equal(BatchSampler(50, 128, seed=4).next(), b)
    # independent of torch's global RNG
    torch.manual_seed(123)
    u = BatchSampler(50, 128, seed=3)
    torch.rand(10)
    assert torch.equal(next(iter(u)), b)
    # uniform over indices
    big = torch.cat([BatchSampler(10, 1000, seed=0).next() for _ in range(1)])
    counts = torch.bincount(big, minlength=10).float()
    assert (counts - 100).abs().max().item() < 50


def test_sampler_resume_via_state_dict(tmp_path):
    a = BatchSampler(1000, 16, seed=7)
    for _ in range(5):
        a.next()
    path = tmp_path / "sampler.pt"
    torch.save(a.state_dict(), path)
    expected = [a.next() for _ in range(4)]
    state = torch.load(path, weights_only=True)
    assert state["generator"].dtype == torch.uint8 and state["steps"] == 5
    b = BatchSampler(1000, 16, seed=99)
    b.load_state_dict(state)
    got = [b.next() for _ in range(4)]
    assert all(torch.equal(e, g) for e, g in zip(expected, got))
    assert b.steps == 9
    with pytest.raises(ValueError, match="n=1000"):
        BatchSampler(999, 16).load_state_dict(state)
    # the state round-trips through an in-memory buffer too
    buf = io.BytesIO()
    torch.save(b.state_dict(), buf)
    buf.seek(0)
    c = BatchSampler(1000, 16)
    c.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(c.next(), b.next())
