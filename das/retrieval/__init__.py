"""Semantic retrieval over processes, TDE types and deployed definitions (ChromaDB, offline).

Embeddings come from all-MiniLM-L6-v2 run in numpy (:mod:`das.retrieval.embed`); the index is
a persistent Chroma collection under ``$DAS_HOME/chroma`` (:mod:`das.retrieval.index`); the
helpers in :mod:`das.retrieval.sources` turn DAS's artefacts into documents.
"""

from das.retrieval.embed import FALLBACK_NAME, MODEL_NAME, HashEmbedding, MiniLMEmbedding, get_embedder
from das.retrieval.index import KINDS, Doc, Hit, Index, IndexReport
from das.retrieval.sources import index_deployed, index_processes, index_tde_registry

__all__ = [
    "FALLBACK_NAME",
    "KINDS",
    "MODEL_NAME",
    "Doc",
    "HashEmbedding",
    "Hit",
    "Index",
    "IndexReport",
    "MiniLMEmbedding",
    "get_embedder",
    "index_deployed",
    "index_processes",
    "index_tde_registry",
]
