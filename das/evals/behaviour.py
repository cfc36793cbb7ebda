"""Behavioural scoring of a drafted BPMN process against its reference model.

The element-level F1 of the authoring eval (``das/evals/authoring.py``) checks *which*
activities and gateways a draft has; it cannot tell a draft that runs the right steps in the
wrong order from a correct one. This module compares *behaviour*, the way conformance checking
in process mining does:

1. **Play out.** Each model is run ``runs`` times with DAS's own simulator (``_Run`` of
   ``das.bpmn.simulate``, seeded per run as ``simulate_file`` seeds it: ``f"{seed}:{run}"``).
   A run's trace is the sequence of activities the driver finished (every task kind and call
   activities, by ``name``, else id; see ``_Run.trace``), cut at ``max_len``. Loops are bounded
   by the simulator's ``max_steps``. The set of distinct traces is the model's *variants*.
2. **Align labels.** Draft and reference name activities differently. Draft labels are mapped
   to reference labels with the authoring eval's matcher: name tokens (``tokens``), Jaccard
   similarity (``jaccard``), greedy one-to-one, highest similarity first (ties: draft order,
   then reference order), same family (task / call activity), similarity >= ``JACCARD_MIN``.
   An unmatched draft label stays its own symbol, so it counts as extra behaviour.
3. **Footprint.** The directly-follows relation over the variants, with an artificial start
   ``▶`` and end ``■`` (so "what may come first / last" is part of it).
4. **Scores.** fitness = share of the reference's pairs the draft has (how much reference
   behaviour the draft can replay); precision = share of the draft's pairs the reference has
   (how little else the draft allows); ``f_score`` = their harmonic mean (0 when both are 0).
   ``trace_fitness`` = share of reference variants that are exactly draft variants.

Why footprints: comparing directly-follows relations is a standard, simple conformance measure
(the "footprint" comparison of van der Aalst's *Process Mining*; directly-follows graphs
underlie most discovery and conformance tools). It is cheap (set arithmetic on a few dozen
pairs), deterministic for a seed, needs no alignment solver and no AGPL dependency (pm4py is
deliberately not used).

Limits, stated plainly:

* The variants are a sample. A choice whose branch the simulator never takes, or a parallel
  block whose interleavings are not all seen, leaves pairs out of the footprint. Parallel
  blocks need enough runs: ``n`` branches with ``k`` steps each have many interleavings, and a
  pair between two branches only appears if some run interleaves them that way. 200 runs
  saturate the footprints of all 22 reference cases (the tests check two seeds agree).
* Directly-follows pairs are local: two models with the same pairs can differ in longer-range
  behaviour (e.g. how often a loop repeats, which branch choice follows which). ``trace_fitness``
  is the stricter, whole-trace view, but it is sensitive to sampling in loops and parallels.
* Values the simulator samples for branch conditions decide which branches run. Its sampler
  (``simulate_prep``) offers each numeric variable its compared literals and one value above
  (``_other``), never one below, so a ``x < 600`` branch never runs. ``_play`` adds a value below
  the smallest literal (see ``_widen``) so both sides of every numeric comparison are reachable;
  it also seeds the simulator's coin for untranslatable / unconditioned flows per run (the
  simulator leaves it unseeded), so scores do not vary between calls.
* Events, gateways and data are not scored; an activity ended by a caught error or timeout
  still appears in the trace (it ran), followed by the boundary path.
* A draft that cannot be simulated (unparseable, rejected by SpiffWorkflow, every run stuck)
  scores 0 / 0 with a ``note``. If only some runs get stuck, the completed runs are scored and
  the note says how many were stuck.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from das.authoring.labels import ACTIVITY_FAMILY, JACCARD_MIN, jaccard, tokens
from das.bpmn.parse import parse
from das.bpmn.simulate import DEFAULT_MAX_STEPS, _one_line, _Run
from das.bpmn.simulate_prep import prepare

START = "▶"
END = "■"
DEFAULT_RUNS = 200
DEFAULT_MAX_LEN = 60
TIME_LIMIT_S = 30.0
TRACED_FAMILIES = {"task", "call"}  # sub-processes are containers: their inner tasks are traced

Variant = tuple[str, ...]


class BehaviourScores(BaseModel):
    """Footprint fitness / precision / F-score and trace-level fitness of a candidate."""

    model_config = ConfigDict(frozen=True)

    fitness: float
    precision: float
    f_score: float
    trace_fitness: float
    variants_reference: frozenset[Variant]
    variants_candidate: frozenset[Variant]  # after mapping draft labels to reference labels
    mapping: dict[str, str] = {}  # draft label -> reference label (matched labels only)
    note: str | None = None


@dataclass
class _Played:
    variants: set[Variant] = field(default_factory=set)
    completed: int = 0
    stuck: int = 0
    runs: int = 0
    families: dict[str, str] = field(default_factory=dict)  # activity label -> family, document order
    note: str | None = None


def _widen(prep: object) -> None:
    """Give every numeric condition variable a value below its smallest literal as well."""
    values: dict[str, list[object]] = getattr(prep, "condition_values", {})
    for vals in values.values():
        nums = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
        if nums and min(nums) - 1 not in vals:
            vals.append(min(nums) - 1)


def _families(xml: str) -> dict[str, str]:
    """Activity label (name, else id) -> family, in document order; {} if the XML does not parse."""

    try:
        defs = parse(xml.encode(), name="behaviour.bpmn")
    except Exception:  # noqa: BLE001 - the simulator reports the problem; labels default to tasks
        return {}
    out: dict[str, str] = {}
    for n in defs.nodes.values():
        fam = ACTIVITY_FAMILY.get(n.type)
        if fam in TRACED_FAMILIES:
            out.setdefault(n.name or n.id, fam)
    return out


def _play(xml: str, runs: int, seed: int, max_len: int) -> _Played:
    """Simulate ``runs`` seeded runs; variants of the completed runs. Never raises."""

    played = _Played(families=_families(xml))
    with tempfile.NamedTemporaryFile(suffix=".bpmn", delete=False) as fh:
        fh.write(xml.encode())
        path = fh.name
    try:
        try:
            prep = prepare(path)
        except Exception as exc:  # noqa: BLE001 - an unparseable model is a result
            played.note = f"not simulatable: {_one_line(exc)}"
            return played
        if prep.spec is None:
            why = "; ".join(str(u["construct"]) for u in prep.unsupported) or "no runnable process"
            played.note = f"not simulatable: {why}"
            return played
        _widen(prep)
        deadline = time.monotonic() + TIME_LIMIT_S
        for run in range(runs):
            if time.monotonic() > deadline:
                played.note = f"time limit: stopped after {run} of {runs} runs"
                break
            prep.coin.seed(f"{seed}:{run}:coin")
            sim = _Run(prep, {}, random.Random(f"{seed}:{run}"), DEFAULT_MAX_STEPS)
            try:
                outcome = sim.execute()
            except Exception as exc:  # noqa: BLE001 - execute reports engine errors; be safe anyway
                outcome = (_one_line(exc), None)
            played.runs += 1
            if outcome is None:
                played.completed += 1
                played.variants.add(tuple(sim.trace[:max_len]))
            else:
                played.stuck += 1
        return played
    finally:
        Path(path).unlink(missing_ok=True)


def trace_variants(
    xml: str, runs: int = DEFAULT_RUNS, seed: int = 0, max_len: int = DEFAULT_MAX_LEN
) -> set[Variant]:
    """Distinct activity sequences of the completed runs (empty if the model cannot run)."""
    return set(_play(xml, runs, seed, max_len).variants)


def footprint(variants: set[Variant] | frozenset[Variant]) -> set[tuple[str, str]]:
    """Directly-follows pairs over the variants, with ``▶`` before and ``■`` after each."""
    pairs: set[tuple[str, str]] = set()
    for v in variants:
        seq = (START, *v, END)
        pairs.update(zip(seq, seq[1:], strict=False))
    return pairs


def align_labels(candidate: dict[str, str], reference: dict[str, str]) -> dict[str, str]:
    """Draft label -> reference label: greedy one-to-one Jaccard matching of name tokens
    (highest first; ties by draft order, then reference order), same family, >= JACCARD_MIN.
    Arguments map label -> family in document order; unmatched labels are left out."""
    cand = list(candidate.items())
    ref = list(reference.items())
    ctok = [tokens(c) for c, _ in cand]
    rtok = [tokens(r) for r, _ in ref]
    pairs = sorted(
        (
            (jaccard(ctok[i], rtok[j]), i, j)
            for i in range(len(cand))
            for j in range(len(ref))
            if cand[i][1] == ref[j][1]
        ),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    mapping: dict[str, str] = {}
    used_r: set[int] = set()
    for sim, i, j in pairs:
        if sim < JACCARD_MIN:
            break
        if cand[i][0] not in mapping and j not in used_r:
            mapping[cand[i][0]] = ref[j][0]
            used_r.add(j)
    return mapping


def _labels(played: _Played) -> dict[str, str]:
    """Labels the variants use, with their family, in document order (unknown ones last, sorted)."""
    seen = {a for v in played.variants for a in v}
    out = {label: fam for label, fam in played.families.items() if label in seen}
    out.update({label: "task" for label in sorted(seen - set(out))})
    return out


def _zero(ref: set[Variant], cand: set[Variant], note: str) -> BehaviourScores:
    return BehaviourScores(
        fitness=0.0,
        precision=0.0,
        f_score=0.0,
        trace_fitness=0.0,
        variants_reference=frozenset(ref),
        variants_candidate=frozenset(cand),
        note=note,
    )


def behaviour_scores(
    candidate_xml: str,
    reference_xml: str,
    runs: int = DEFAULT_RUNS,
    seed: int = 0,
    max_len: int = DEFAULT_MAX_LEN,
) -> BehaviourScores:
    """Footprint fitness, precision and F-score (and trace fitness) of a draft against a
    reference, both simulated with the same ``runs`` and ``seed``. Never raises: a model that
    cannot be simulated scores 0 with a ``note``."""
    try:
        ref = _play(reference_xml, runs, seed, max_len)
        cand = _play(candidate_xml, runs, seed, max_len)
    except Exception as exc:  # noqa: BLE001 - scoring must not crash an eval run
        return _zero(set(), set(), f"simulation failed: {type(exc).__name__}: {exc}"[:300])
    if not ref.completed:
        return _zero(ref.variants, cand.variants, f"reference: {ref.note or f'all {ref.runs} runs stuck'}")
    if not cand.completed:
        return _zero(ref.variants, cand.variants, f"candidate: {cand.note or f'all {cand.runs} runs stuck'}")
    ref_labels = _labels(ref)
    mapping = align_labels(_labels(cand), ref_labels)
    # an unmatched draft label that happens to equal a reference label must stay distinct
    rename = {c: mapping.get(c, f"{c} [draft]" if c in ref_labels else c) for c in _labels(cand)}
    cand_variants = {tuple(rename[a] for a in v) for v in cand.variants}
    fp_ref, fp_cand = footprint(ref.variants), footprint(cand_variants)
    common = len(fp_ref & fp_cand)
    fitness = common / len(fp_ref)
    precision = common / len(fp_cand)
    f_score = 2 * fitness * precision / (fitness + precision) if fitness + precision else 0.0
    trace_fit = len(ref.variants & cand_variants) / len(ref.variants)
    notes = [
        f"{who}: {p.stuck} of {p.runs} runs stuck (completed runs scored)"
        for who, p in (("reference", ref), ("candidate", cand))
        if p.stuck
    ]
    notes += [f"{who}: {p.note}" for who, p in (("reference", ref), ("candidate", cand)) if p.note]
    return BehaviourScores(
        fitness=round(fitness, 4),
        precision=round(precision, 4),
        f_score=round(f_score, 4),
        trace_fitness=round(trace_fit, 4),
        variants_reference=frozenset(ref.variants),
        variants_candidate=frozenset(cand_variants),
        mapping=mapping,
        note="; ".join(notes) or None,
    )


__all__ = [
    "BehaviourScores",
    "align_labels",
    "behaviour_scores",
    "footprint",
    "trace_variants",
    "START",
    "END",
]
