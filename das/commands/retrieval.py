"""``das search``: find similar processes and task types (what drafting is given as context)."""

from __future__ import annotations

import click

from das.output import emit, progress


@click.command()
@click.argument("query")
@click.option("--kind", type=click.Choice(["process", "tde", "deployed"]), help="Only this kind of document.")
@click.option("-k", "limit", default=5, show_default=True, type=click.IntRange(1, 50), help="How many hits.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def search(query: str, kind: str | None, limit: int, fmt: str) -> None:
    """Search processes/, the TDE registry and deployed definitions by meaning.

    The index lives under $DAS_HOME/chroma and is refreshed first (unchanged documents are
    skipped); embeddings are all-MiniLM-L6-v2, computed offline.
    """
    from das.retrieval import Index, index_processes, index_tde_registry  # lazy: chromadb

    index = Index.open()
    progress("refreshing the index …")
    index_processes(index=index)
    index_tde_registry(index=index)
    hits = index.search(query, kind=kind, k=limit)
    rows = [
        {
            "id": h.id,
            "kind": h.kind,
            "score": round(h.score, 4),
            "embedding": h.embedding,
            "excerpt": h.text_excerpt,
        }
        for h in hits
    ]
    emit(
        rows,
        fmt,
        lambda data: (
            "\n".join(f"{r['score']:.3f}  {r['id']:<36} {r['excerpt'][:80]}" for r in data) or "no hits"
        ),
    )
