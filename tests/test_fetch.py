"""``facelab data fetch``: end to end against a local HTTP server on 127.0.0.1 that the test
starts, serving a small LFW-layout archive the test builds (images generated here)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from facelab.cli import app
from facelab.data.datasets import load_dataset
from facelab.data.fetch import (
    DOWNLOADS_DIR,
    FetchError,
    NotFetchableError,
    SourcesError,
    fetch_dataset,
    how_to_get,
    load_sources,
)

PEOPLE = {"Ada_Lovelace": 3, "Alan_Turing": 2, "Grace_Hopper": 1}


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def _lfw_files() -> dict[str, bytes]:
    """The released files, in the release's layout: lfw.tgz holds lfw/<Name>/<Name>_NNNN.jpg."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        seed = 0
        for person, n in PEOPLE.items():
            for i in range(1, n + 1):
                data = _jpeg(seed)
                seed += 1
                info = tarfile.TarInfo(f"lfw/{person}/{person}_{i:04d}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    pairs = ("1\t2\nAda_Lovelace\t1\t2\nAlan_Turing\t1\t2\n"
             "Ada_Lovelace\t3\tGrace_Hopper\t1\nAlan_Turing\t2\tGrace_Hopper\t1\n")
    male = "Alan_Turing_0001.jpg\r\nAlan_Turing_0002.jpg\r\n"
    female = "".join(f"{p}_{i:04d}.jpg\r\n" for p in ("Ada_Lovelace", "Grace_Hopper")
                     for i in range(1, PEOPLE[p] + 1))
    race = json.dumps({"Alan_Turing": "caucasian", "Grace_Hopper": "caucasian"})
    return {"lfw.tgz": buf.getvalue(), "pairs.txt": pairs.encode(),
            "male_names.txt": male.encode(), "female_names.txt": female.encode(),
            "lfw_race.json": race.encode()}


class _Server:
    """A 127.0.0.1 HTTP server with Range support; ``truncate[name] = n`` announces the
    full length but sends only ``n`` bytes once, ``corrupt`` serves wrong bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.truncate: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                if name in server.corrupt:
                    data = b"X" * len(data)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start:
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.truncate.pop(name, None)
                self.wfile.write(data[start:cut] if cut is not None else data[start:])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with _Server(_lfw_files()) as srv:
        yield srv


def _sources(tmp_path: Path, srv: _Server, *, mirror_first: bool = False) -> Path:
    files = []
    for name, data in srv.files.items():
        urls = [f"{srv.url}/{name}"]
        if mirror_first:
            urls.insert(0, f"{srv.url}/gone/{name}")  # a dead mirror first: 404
        entry = {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "urls": urls}
        if name.endswith(".tgz"):
            entry.update(extract="tar", creates="lfw")
        files.append(entry)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"lfw": {"folder": "lfw", "files": files},
                                    "cfd": {"how": "fill in the request form"}}))
    return path


def test_fetch_lfw_end_to_end_through_the_cli(tmp_path, server):
    root = tmp_path / "data"
    sources = _sources(tmp_path, server, mirror_first=True)
    result = CliRunner().invoke(app, ["data", "fetch", "lfw", "--root", str(root),
                                      "--sources", str(sources), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "SHA-256 verified" in result.output
    assert "6 images readable by facelab" in result.output
    lfw = root / "lfw"
    assert (lfw / "lfw" / "Ada_Lovelace" / "Ada_Lovelace_0003.jpg").is_file()
    for name in ("pairs.txt", "male_names.txt", "female_names.txt", "lfw_race.json"):
        assert (lfw / name).read_bytes() == _lfw_files()[name]
    assert not (root / DOWNLOADS_DIR).exists()  # the download area is cleaned up
    assert [p.name for p in root.iterdir()] == ["lfw"]  # no staging folder left behind
    df = load_dataset("lfw", root=lfw)
    assert len(df) == 6 and df["subject"].nunique() == 3
    # the dead mirror was tried first, then the working address
    assert ("gone/lfw.tgz", None) in server.requests and ("lfw.tgz", None) in server.requests
    # a second fetch finds it complete and downloads nothing
    before = len(server.requests)
    again = fetch_dataset("lfw", root, sources=sources, progress=False, say=lambda s: None)
    assert again == lfw and len(server.requests) == before


def test_fetch_shows_the_malformed_entries_it_skipped(tmp_path):
    files = _lfw_files()
    files["male_names.txt"] += b"README\r\n"  # not <Name>_<NNNN>.jpg
    with _Server(files) as srv:
        result = CliRunner().invoke(app, ["data", "fetch", "lfw", "--root",
                                          str(tmp_path / "data"), "--sources",
                                          str(_sources(tmp_path, srv)), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "6 images readable by facelab" in result.output
    assert "malformed entries skipped: 1" in result.output and "README" in result.output


def test_corrupted_download_fails_clearly_and_installs_nothing(tmp_path, server):
    root = tmp_path / "data"
    server.corrupt.add("male_names.txt")
    with pytest.raises(FetchError, match=r"male_names.txt could not be downloaded"
                                         r"[\s\S]*SHA-256[\s\S]*Nothing was installed"):
        fetch_dataset("lfw", root, sources=_sources(tmp_path, server), progress=False,
                      say=lambda s: None)
    assert not (root / "lfw").exists()
    leftovers = [p.name for p in (root / DOWNLOADS_DIR / "lfw").iterdir()]
    assert "male_names.txt" not in leftovers and "male_names.txt.part" not in leftovers
    assert not [p for p in root.iterdir() if p.name.startswith(".lfw-incoming")]


def test_partial_download_is_kept_and_resumed(tmp_path, server):
    root = tmp_path / "data"
    sources = _sources(tmp_path, server)
    size = len(_lfw_files()["lfw.tgz"])
    server.truncate["lfw.tgz"] = size // 2  # the connection drops half way
    with pytest.raises(FetchError, match=r"partial download .* run the same command again"):
        fetch_dataset("lfw", root, sources=sources, progress=False, say=lambda s: None)
    assert not (root / "lfw").exists()
    part = root / DOWNLOADS_DIR / "lfw" / "lfw.tgz.part"
    kept = part.stat().st_size  # the whole chunks received before the drop
    assert 0 < kept <= size // 2
    said = []
    fetch_dataset("lfw", root, sources=sources, progress=False, say=said.append)
    assert ("lfw.tgz", f"bytes={kept}-") in server.requests  # resumed with a Range request
    assert any(f"resumed at {kept:,} bytes" in s for s in said)
    assert len(load_dataset("lfw", root=root / "lfw")) == 6


def test_datasets_that_need_a_request_say_where(tmp_path, server):
    sources = _sources(tmp_path, server)
    with pytest.raises(NotFetchableError, match="fill in the request form"):
        fetch_dataset("cfd", tmp_path / "data", sources=sources)
    result = CliRunner().invoke(app, ["data", "fetch", "cfd", "--root", str(tmp_path),
                                      "--sources", str(sources)])
    assert result.exit_code == 1 and "fill in the request form" in result.output
    assert not (tmp_path / "data").exists()


def test_shipped_sources_are_valid_and_cover_every_dataset():
    from facelab.data.datasets import dataset_specs

    sources = load_sources()
    assert sources["lfw"].fetchable
    assert {f.name for f in sources["lfw"].files} == {
        "lfw.tgz", "pairs.txt", "male_names.txt", "female_names.txt", "lfw_race.json"}
    for spec in dataset_specs():
        if spec.folder:
            assert spec.name in sources, f"{spec.name} missing from data_sources.yaml"
            assert how_to_get(spec.name, sources)
    assert how_to_get("lfw", sources) == "facelab data fetch lfw"


def test_malformed_sources_file_names_the_entry(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"lfw": {"files": [{"name": "a.txt", "sha256": "123",
                                                      "urls": ["http://127.0.0.1/a"]}]}}))
    with pytest.raises(SourcesError, match=r"bad.yaml: lfw.files\[0\].sha256"):
        load_sources(bad)
