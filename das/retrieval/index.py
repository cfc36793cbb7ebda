"""A persistent semantic index over processes, TDE types and deployed definitions.

Why Chroma with our own vectors: Chroma gives a persistent on-disk ANN index with metadata
filters; we hand it vectors from :mod:`das.retrieval.embed` so it never reaches for its own
(downloading) embedding function. Each embedder gets its own collection, so switching between
the model and the hash fallback never mixes incomparable vectors.

Upserts are idempotent: every document carries a hash of its text, metadata and embedder, and
an unchanged document is neither re-embedded nor rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from das.config import das_home
from das.errors import InvalidInput
from das.retrieval.embed import Embedder, get_embedder

# Chroma reads these at import; set them first so nothing phones home.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("CHROMA_TELEMETRY", "False")

KINDS = ("process", "tde", "deployed")
EXCERPT_CHARS = 240
_HASH_KEY = "content_hash"
_RESERVED = {"kind", _HASH_KEY, "embedding"}


@dataclass(frozen=True)
class Doc:
    """One indexable document; ``id`` is the upsert key (unique across kinds)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A search result. ``score`` is cosine similarity (1 = same direction)."""

    id: str
    kind: str
    score: float
    metadata: dict[str, Any]
    text_excerpt: str
    embedding: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "score": round(self.score, 4),
            "metadata": self.metadata,
            "text_excerpt": self.text_excerpt,
            "embedding": self.embedding,
        }


@dataclass
class IndexReport:
    """What one ``index_documents`` call did."""

    kind: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    embedding: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "removed": len(self.removed),
            "errors": self.errors,
            "embedding": self.embedding,
        }


def _clean_metadata(meta: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """Chroma stores scalars only: drop None, keep scalars, JSON-encode the rest."""
    out: dict[str, str | int | float | bool] = {}
    for key, value in meta.items():
        if value is None or key in _RESERVED:
            continue
        if isinstance(value, str | int | float | bool):
            out[str(key)] = value
        else:
            out[str(key)] = json.dumps(value, sort_keys=True, default=str)
    return out


def content_hash(doc: Doc, embedder_name: str) -> str:
    payload = json.dumps([embedder_name, doc.text, _clean_metadata(doc.metadata)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _collection_name(embedder: Embedder) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in embedder.name.lower()).strip("_")
    return f"das_{slug}_{embedder.dim}"


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _client(path: Path) -> Any:
    """One Chroma client per path (or server) per process (Chroma itself shares systems by path).

    ``DAS_CHROMA_URL=http://host:8000``: a Chroma server shared by every worker and API
    server (client/server mode) instead of the embedded files under ``path``."""
    import chromadb
    from chromadb.config import Settings

    url = os.environ.get("DAS_CHROMA_URL", "").strip()
    key = url or str(path.resolve())
    with _clients_lock:
        if key not in _clients:
            settings = Settings(anonymized_telemetry=False, allow_reset=False)
            if url:
                parts = urlsplit(url)
                _clients[key] = chromadb.HttpClient(
                    host=parts.hostname or "127.0.0.1",
                    port=parts.port or 8000,
                    ssl=parts.scheme == "https",
                    settings=settings,
                )
            else:
                path.mkdir(parents=True, exist_ok=True)
                _clients[key] = chromadb.PersistentClient(path=key, settings=settings)
        return _clients[key]


class Index:
    """The retrieval index under ``$DAS_HOME/chroma``."""

    def __init__(self, path: Path, embedder: Embedder) -> None:
        self.path = path
        self.embedder = embedder
        self._collection = _client(path).get_or_create_collection(
            _collection_name(embedder),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
            metadata={"embedding": embedder.name},
        )

    @classmethod
    def open(cls, home: Path | None = None, embedder: Embedder | None = None) -> Index:
        """Open (creating if needed) the index in ``home/chroma``; ``home`` defaults to DAS_HOME."""
        root = Path(home) if home is not None else das_home()
        return cls(root / "chroma", embedder or get_embedder())

    @property
    def embedding(self) -> str:
        """``all-MiniLM-L6-v2``, or ``hash-fallback`` when the model package is missing."""
        return self.embedder.name

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return int(self._collection.count())
        return len(self.ids(kind))

    def ids(self, kind: str | None = None) -> list[str]:
        where = {"kind": _check_kind(kind)} if kind else None
        return list(self._collection.get(where=where, include=[])["ids"])

    def get(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored metadata (including ``content_hash``) for those ids that exist."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        got = self._collection.get(ids=wanted, include=["metadatas"])
        return {i: dict(m or {}) for i, m in zip(got["ids"], got["metadatas"], strict=True)}

    def index_documents(self, kind: str, docs: list[Doc], prune: dict[str, Any] | None = None) -> IndexReport:
        """Upsert ``docs`` as ``kind``; unchanged documents are skipped, changed ones re-embedded.

        ``prune``: a metadata filter (e.g. ``{"folder": "/x/processes"}``); documents of this
        kind that match it but are not in ``docs`` are removed (the source file was deleted).
        """
        _check_kind(kind)
        report = IndexReport(kind=kind, embedding=self.embedder.name)
        seen: dict[str, Doc] = {}
        for doc in docs:
            if not doc.id:
                raise InvalidInput("retrieval: a document needs a non-empty id")
            seen[doc.id] = doc  # last one wins, like an upsert
        existing = self.get(seen)
        todo: list[tuple[Doc, str]] = []
        for doc in seen.values():
            digest = content_hash(doc, self.embedder.name)
            old = existing.get(doc.id)
            if old is not None and old.get(_HASH_KEY) == digest and old.get("kind") == kind:
                report.unchanged.append(doc.id)
                continue
            (report.updated if old is not None else report.added).append(doc.id)
            todo.append((doc, digest))
        if todo:
            vectors = self.embedder.embed([d.text for d, _ in todo])
            self._collection.upsert(
                ids=[d.id for d, _ in todo],
                embeddings=vectors.tolist(),
                documents=[d.text for d, _ in todo],
                metadatas=[
                    {
                        **_clean_metadata(d.metadata),
                        "kind": kind,
                        _HASH_KEY: h,
                        "embedding": self.embedder.name,
                    }
                    for d, h in todo
                ],
            )
        if prune is not None:
            where = _where({"kind": kind, **_clean_metadata(prune)})
            stale = [i for i in self._collection.get(where=where, include=[])["ids"] if i not in seen]
            self.remove(stale)
            report.removed.extend(stale)
        return report

    def remove(self, ids: Iterable[str]) -> None:
        doomed = list(dict.fromkeys(ids))
        if doomed:
            self._collection.delete(ids=doomed)

    def search(self, query: str, kind: str | None = None, k: int = 5) -> list[Hit]:
        """The ``k`` documents nearest in meaning to ``query``, best first."""
        if k <= 0 or not query.strip():
            return []
        where = {"kind": _check_kind(kind)} if kind else None
        total = self.count(kind) if kind else self.count()
        if total == 0:
            return []
        vector = self.embedder.embed([query])[0]
        res = self._collection.query(
            query_embeddings=[vector.tolist()],
            n_results=min(k, total),
            where=where,
            include=["metadatas", "documents", "distances"],
        )
        hits: list[Hit] = []
        for ident, meta, text, dist in zip(
            res["ids"][0], res["metadatas"][0], res["documents"][0], res["distances"][0], strict=True
        ):
            meta = dict(meta or {})
            hit_kind = str(meta.pop("kind", ""))
            meta.pop(_HASH_KEY, None)
            embedding = str(meta.get("embedding", self.embedder.name))
            hits.append(Hit(ident, hit_kind, 1.0 - float(dist), meta, _excerpt(text or ""), embedding))
        return hits


def _check_kind(kind: str | None) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"retrieval: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def _where(filters: dict[str, Any]) -> dict[str, Any]:
    """Chroma wants ``$and`` for more than one condition."""
    if len(filters) == 1:
        return filters
    return {"$and": [{key: value} for key, value in filters.items()]}


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"
