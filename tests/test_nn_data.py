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


# --------------------------------------------------------------------------- CIFAR files never run code


def _py2_pickle(obj):
    """``obj`` pickled the way Python 2's cPickle (protocol 2) wrote the original CIFAR files:
    ``str`` as BINSTRING (``bytes`` here), arrays via ``numpy.core.multiarray._reconstruct``
    with the raw data as a BINSTRING. Handles dicts, lists, ints, bytes and 2-D arrays."""
    import struct

    def string(b):
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)

    def integer(v):
        if 0 <= v < 256:
            return b"K" + bytes([v])
        if 0 <= v < 65536:
            return b"M" + struct.pack("<H", v)
        return b"J" + struct.pack("<i", v)

    def enc(o):
        if isinstance(o, dict):
            return b"}(" + b"".join(enc(k) + enc(v) for k, v in o.items()) + b"u"
        if isinstance(o, list):
            return b"](" + b"".join(enc(v) for v in o) + b"e"
        if isinstance(o, bytes):
            return string(o)
        if isinstance(o, int):
            return integer(o)
        if isinstance(o, np.ndarray):
            assert o.dtype == np.uint8 and o.ndim == 2
            return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
                    b"(K\x01" + integer(o.shape[0]) + integer(o.shape[1]) + b"\x86"
                    b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
                    b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
                    b"\x89" + string(np.ascontiguousarray(o).tobytes()) + b"tb")
        raise TypeError(type(o))

    return b"\x80\x02" + enc(obj) + b"."


def _write_cifar10(root, dump):
    """A complete CIFAR-10 folder whose files are written by ``dump(path, obj)``; returns the
    batches (bytes keys) for comparison."""
    rng = np.random.default_rng(5)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = _batch(rng, 10, 10, b"labels")
        dump(folder / name, batches[name])
    dump(folder / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)],
                                   b"num_cases_per_batch": 10, b"num_vis": 3072})
    return batches


def _check_loaded(ds, batches):
    tr = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    mean, std = CIFAR_STATS["cifar10"]
    m = np.array(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    s = np.array(std, dtype=np.float32).reshape(1, 3, 1, 1)
    expect = (tr.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0 - m) / s
    np.testing.assert_allclose(ds.train_x.numpy(), expect, rtol=1e-6, atol=1e-6)
    labels = np.concatenate([batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    assert ds.train_y.tolist() == labels.tolist()
    assert ds.test_y.tolist() == list(batches["test_batch"][b"labels"])
    assert ds.class_names == tuple(f"class{i}" for i in range(10))


def test_cifar_python2_cpickle_files_load(tmp_path):
    """Files as Python 2 wrote them (str keys and raw data read back with latin1) load."""
    def dump(path, obj):
        path.write_bytes(_py2_pickle(obj))

    batches = _write_cifar10(tmp_path, dump)
    raw = (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"_codecs" not in raw
    _check_loaded(load_cifar(tmp_path, "cifar10"), batches)


@pytest.mark.parametrize("protocol", sorted({0, 1, 2, 3, 4, pickle.DEFAULT_PROTOCOL,
                                             pickle.HIGHEST_PROTOCOL}))
@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar_files_of_every_pickle_protocol_load(tmp_path, protocol, str_keys):
    """uint8 arrays, int lists, bytes and NumPy scalars load under every protocol (protocol 2
    names ``_codecs.encode`` and ``bytes``, the latest NumPy's ``_frombuffer``)."""
    def dump(path, obj):
        obj = dict(obj)
        if path.name == "batches.meta":
            obj[b"num_vis"] = np.int64(3072)  # a NumPy scalar
            obj[b"empty"] = b""  # bytes() under protocols 0-2
        obj = {k.decode(): v for k, v in obj.items()} if str_keys else obj
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)

    batches = _write_cifar10(tmp_path, dump)
    _check_loaded(load_cifar(tmp_path, "cifar10"), batches)


class _Payload:
    """Pickles as ``func(*args)``: what a crafted file would make a plain unpickler call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    import builtins
    import os
    import subprocess
    import sys

    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Payload(os.system, f"touch '{marker}'"),
        "exec": _Payload(builtins.exec, touch),
        "eval": _Payload(builtins.eval, touch),
        "subprocess": _Payload(subprocess.call, [sys.executable, "-c", touch]),
    }


@pytest.mark.parametrize("protocol", [0, 2, 4, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("kind", ["os.system", "exec", "eval", "subprocess"])
def test_cifar_batch_that_would_run_code_is_refused(tmp_path, cifar10_root, kind, protocol):
    from sgdthermo.errors import ConfigError

    folder = cifar10_root / "cifar-10-batches-py"
    # the payload is live: a plain unpickler runs it
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_payloads(control)[kind], protocol=protocol))
    assert control.exists()

    marker = tmp_path / "marker"
    good = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    evil = {**good, b"data": _payloads(marker)[kind]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(ConfigError, match="refused to load") as err:
        load_cifar(cifar10_root, "cifar10")
    msg = str(err.value)
    assert "\n" not in msg and str(folder / "data_batch_1") in msg
    # the global as the file names it (Python 3 writes subprocess.call as commands.call
    # under protocols 0-2, for Python 2)
    named = {"os.system": ["system"], "exec": ["exec"], "eval": ["eval"],
             "subprocess": ["subprocess.call", "commands.call"]}[kind]
    assert any(n in msg for n in named)
    assert "not a CIFAR batch" in msg
    assert not marker.exists()


def test_cifar_meta_that_would_run_code_is_refused(tmp_path, cifar10_root):
    import os

    from sgdthermo.errors import ConfigError

    marker = tmp_path / "marker"
    meta = cifar10_root / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps(_Payload(os.system, f"touch '{marker}'"), protocol=2))
    with pytest.raises(ConfigError, match="refused to load") as err:
        load_cifar(cifar10_root, "cifar10")
    assert str(meta) in str(err.value) and not marker.exists()


def test_cli_train_refuses_cifar_batch_that_would_run_code(tmp_path, cifar10_root, capsys):
    import os

    from sgdthermo.cli import main

    marker = tmp_path / "marker"
    batch = cifar10_root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps(_Payload(os.system, f"touch '{marker}'"), protocol=2))
    out = tmp_path / "run"
    code = main(["train", "--model", "convnet", "--dataset", "cifar10", "--data-dir",
                 str(cifar10_root), "--protocol", "fixed-elr", "--lr", "0.01", "--wd", "0.01",
                 "--iters", "10", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("sgdthermo: error:")
    assert str(batch) in lines[0] and "refused to load" in lines[0]
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("content,reason", [
    (b"", "not a readable pickle"),
    (b"hello, this is a text file\n", "not a readable pickle"),
    (bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)), "not a CIFAR batch"),
    (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 4}, protocol=2)[:-300],
     "not a readable pickle"),
    (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 4}, protocol=5)[:40],
     "not a readable pickle"),
    (pickle.dumps([1, 2, 3], protocol=2), "holds a list, expected a dict"),
    (pickle.dumps(np.zeros(3, np.uint8), protocol=4), "holds a ndarray, expected a dict"),
], ids=["empty", "text", "random-bytes", "truncated-p2", "truncated-p5", "list", "array"])
def test_cifar_batch_not_a_pickle_is_one_line_error(cifar10_root, content, reason):
    from sgdthermo.errors import ConfigError

    batch = cifar10_root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_cifar(cifar10_root, "cifar10")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{batch}: ") and reason in msg


def test_checkpoints_loaded_with_weights_only():
    """Every ``torch.load`` call in the package passes ``weights_only=True`` (a checkpoint
    file must not be able to run code either)."""
    import ast
    from pathlib import Path

    import sgdthermo

    calls = []
    for path in sorted(Path(sgdthermo.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"):
                kw = {k.arg: k.value for k in node.keywords}
                ok = (isinstance(kw.get("weights_only"), ast.Constant)
                      and kw["weights_only"].value is True)
                calls.append((f"{path.name}:{node.lineno}", ok))
    assert calls, "no torch.load call found"
    assert [c for c, ok in calls if not ok] == []


def test_which_loads_depend_on_the_seed():
    """The digits split and the synthetic set change with the seed, CIFAR only through a
    seeded subset (runs of every seed in a pack then share one copy)."""
    from sgdthermo.nn.data import depends_on_seed, load_digits

    assert depends_on_seed("digits") and depends_on_seed("synthetic")
    assert not depends_on_seed("cifar10") and depends_on_seed("cifar100", samples_per_label=10)
    assert not torch.equal(load_digits(seed=0).train_y, load_digits(seed=1).train_y)
