"""The verified, atomic downloader, served from file:// and a local http.server (no network)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import sys
import threading

import numpy as np
import pytest

from cnnlab.data import download as download_module
from cnnlab.data import idx as idx_module
from cnnlab.data.datasets import load_dataset
from cnnlab.data.download import download_file, resolve_url
from cnnlab.data.idx import IDX_FILES

PAYLOAD = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB chunk


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_MIRROR", raising=False)


@pytest.fixture
def server(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    (tmp_path / "www").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_http_success_is_atomic(tmp_path, server, monkeypatch):
    (tmp_path / "www" / "f.bin").write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "f.bin"
    replaced = []
    real_replace = download_module.os.replace

    def spy(src, dst):
        replaced.append((str(src), str(dst), dest.exists()))
        real_replace(src, dst)

    monkeypatch.setattr(download_module.os, "replace", spy)
    download_file(server + "f.bin", dest, hashlib.sha256(PAYLOAD).hexdigest(), progress=False)
    assert dest.read_bytes() == PAYLOAD
    [(src, dst, existed)] = replaced
    assert dst == str(dest) and src.endswith(".part") and not existed  # written elsewhere, then renamed
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_plain_progress_without_rich(tmp_path, server, capsys, monkeypatch):
    (tmp_path / "www" / "f.bin").write_bytes(PAYLOAD)
    monkeypatch.setitem(sys.modules, "rich.progress", None)  # import fails
    download_file(server + "f.bin", tmp_path / "f.bin", None, progress=True)
    assert "downloading f.bin: 100%" in capsys.readouterr().err


def test_wrong_checksum_keeps_nothing(tmp_path, server):
    (tmp_path / "www" / "f.bin").write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(ValueError, match=r"failed its sha256 check: expected 0+, got [0-9a-f]{64}.*deleted"):
        download_file(server + "f.bin", dest, "0" * 64, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_file_url_and_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = download_file(
        src.as_uri(),
        tmp_path / "d" / "x.bin",
        hashlib.md5(PAYLOAD).hexdigest(),
        algorithm="md5",
        progress=False,
    )
    assert dest.read_bytes() == PAYLOAD


def test_http_404_keeps_nothing(tmp_path, server):
    with pytest.raises(OSError):
        download_file(server + "missing.bin", tmp_path / "out" / "m.bin", None, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_mirror_env(monkeypatch):
    assert resolve_url("https://a.org/x/", "f.gz") == "https://a.org/x/f.gz"
    monkeypatch.setenv("CNNLAB_MIRROR", "file:///m")
    assert resolve_url("https://a.org/x/", "f.gz") == "file:///m/f.gz"


def _fake_mnist(folder, rng):
    files = {}
    for (split, part), base in IDX_FILES.items():
        n = 6 if split == "train" else 4
        shape = (n, 28, 28) if part == "images" else (n,)
        a = rng.integers(0, 10, shape, dtype=np.uint8)
        header = bytes([0, 0, 8, a.ndim]) + b"".join(d.to_bytes(4, "big") for d in a.shape)
        data = gzip.compress(header + a.tobytes())
        (folder / f"{base}.gz").write_bytes(data)
        files[f"{base}.gz"] = hashlib.md5(data).hexdigest()
    return files


def test_load_dataset_downloads_into_cache(tmp_path, server, monkeypatch, rng):
    md5s = _fake_mnist(tmp_path / "www", rng)
    monkeypatch.setitem(idx_module.SOURCES, "mnist", (server, md5s))
    data = load_dataset("mnist", download=True)
    assert len(data.train) == 6 and len(data.test) == 4
    assert sorted(p.name for p in (tmp_path / "cache" / "cnnlab" / "mnist").iterdir()) == sorted(md5s)


def test_load_dataset_checksum_mismatch_caches_nothing(tmp_path, server, monkeypatch, rng):
    md5s = _fake_mnist(tmp_path / "www", rng)
    md5s["t10k-images-idx3-ubyte.gz"] = "0" * 32
    monkeypatch.setitem(idx_module.SOURCES, "mnist", (server, md5s))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz failed its md5 check"):
        load_dataset("mnist", download=True)
    assert "t10k-images-idx3-ubyte.gz" not in {
        p.name for p in (tmp_path / "cache" / "cnnlab" / "mnist").iterdir()
    }
    assert not any(p.suffix == ".part" for p in (tmp_path / "cache" / "cnnlab" / "mnist").iterdir())


def test_load_dataset_download_failure_lists_places(tmp_path, server, monkeypatch):
    monkeypatch.setitem(idx_module.SOURCES, "mnist", (server, {"train-images-idx3-ubyte.gz": "0"}))
    with pytest.raises(
        FileNotFoundError,
        match=r"(?s)mnist: dataset files not found.*download from http://127\.0\.0\.1.*failed",
    ):
        load_dataset("mnist", root=tmp_path / "r", download=True)
