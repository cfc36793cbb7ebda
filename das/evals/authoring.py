"""The authoring eval: draft each case's prompt with a model and score it against a reference.

Why a separate module: the drafter files proposals; the eval must not. It calls
``draft_document`` (draft, check, repair, no filing) and scores what comes back, so the numbers
measure the same loop ``das draft`` runs. The scorer is documented in evals/authoring/README.md.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from das.authoring.context import reference_processes
from das.authoring.drafter import DraftFailed, draft_document
from das.authoring.labels import ACTIVITY_FAMILY, JACCARD_MIN, jaccard, tokens
from das.authoring.outline import _walk
from das.bpmn.authoring import parse_authoring
from das.bpmn.compile import compile_to_xml
from das.bpmn.parse import parse
from das.bpmn.simulate import simulate_xml
from das.bpmn.validate import validate
from das.config import default_model, resource_dir
from das.contracts import Usage
from das.evals.behaviour import behaviour_scores
from das.output import progress

MAX_REPAIRS = 3
SIM_RUNS = 20
BEHAVIOUR_RUNS = 100
GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}


def cases_root() -> Path:
    return resource_dir("evals") / "authoring" / "cases"


def load_cases(cases_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every ``*.json`` case, in file-name order (so ``limit`` always picks the same cases)."""
    folder = Path(cases_dir) if cases_dir else cases_root()
    cases = []
    for path in sorted(folder.glob("*.json")):
        case = json.loads(path.read_text())
        missing = {"key", "prompt", "reference"} - set(case)
        if missing:
            raise ValueError(f"{path.name}: missing {', '.join(sorted(missing))}")
        case["file"] = path.name
        cases.append(case)
    return cases


def reference_xml(case: dict[str, Any]) -> str:
    """Compile a case's reference (its key forced to the case key, as the drafter does)."""

    return compile_to_xml(parse_authoring({**case["reference"], "key": case["key"]}))


def known_keys(key: str) -> set[str]:
    """Reference processes in processes/ plus the case's own key (call targets that exist)."""

    return set(reference_processes()) | {key}


def check_reference(case: dict[str, Any]) -> dict[str, Any]:
    """Compile, validate and simulate a reference; the test asserts every one is clean."""

    xml = reference_xml(case)
    report = validate(xml.encode(), known_processes=known_keys(case["key"]), name=f"{case['key']}.bpmn")
    errors = [f"{f.rule} on {f.element}: {f.message}" for f in report.findings if f.severity == "error"]
    sim = simulate_xml(xml, runs=SIM_RUNS, seed=0) if not errors else {}
    return {
        "key": case["key"],
        "errors": errors,
        "stuck": sim.get("stuck", []),
        "completed": sim.get("completed", 0),
        "runs": sim.get("runs", 0),
    }


# --- scorer -----------------------------------------------------------------------------


def elements(xml: str) -> tuple[list[tuple[str, frozenset[str]]], Counter[str]]:
    """Activities as (family, name tokens) and gateways as a type multiset."""

    defs = parse(xml.encode(), name="scored.bpmn")
    acts = [
        (ACTIVITY_FAMILY[n.type], tokens(n.name)) for n in defs.nodes.values() if n.type in ACTIVITY_FAMILY
    ]
    gws = Counter(n.type for n in defs.nodes.values() if n.type in GATEWAYS)
    return acts, gws


def match_activities(cand: list[tuple[str, frozenset[str]]], ref: list[tuple[str, frozenset[str]]]) -> int:
    """Greedy one-to-one matching: highest Jaccard first, same family, Jaccard >= JACCARD_MIN."""
    pairs = sorted(
        ((jaccard(c[1], r[1]), i, j) for i, c in enumerate(cand) for j, r in enumerate(ref) if c[0] == r[0]),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_c: set[int] = set()
    used_r: set[int] = set()
    for sim, i, j in pairs:
        if sim < JACCARD_MIN:
            break
        if i not in used_c and j not in used_r:
            used_c.add(i)
            used_r.add(j)
    return len(used_c)


def f1(matched: int, predicted: int, gold: int) -> float:
    """2PR/(P+R) == 2m/(p+g); two empty sets agree perfectly."""
    return 1.0 if predicted + gold == 0 else round(2 * matched / (predicted + gold), 4)


def score_xml(candidate: str, reference: str) -> dict[str, float]:
    """Element-level F1 of a candidate against a reference (activities, gateways, overall)."""
    c_acts, c_gws = elements(candidate)
    r_acts, r_gws = elements(reference)
    m_act = match_activities(c_acts, r_acts)
    m_gw = sum((c_gws & r_gws).values())
    n_cgw, n_rgw = sum(c_gws.values()), sum(r_gws.values())
    return {
        "f1_activities": f1(m_act, len(c_acts), len(r_acts)),
        "f1_gateways": f1(m_gw, n_cgw, n_rgw),
        "f1": f1(m_act + m_gw, len(c_acts) + n_cgw, len(r_acts) + n_rgw),
    }


# --- runner -----------------------------------------------------------------------------


def _tokens_of(attempts: list[dict[str, Any]]) -> tuple[int, int]:
    return (
        sum(int(a.get("input_tokens") or 0) for a in attempts),
        sum(int(a.get("output_tokens") or 0) for a in attempts),
    )


def reference_labels(case: dict[str, Any]) -> list[str]:
    """The reference's activity names in document order (the benchmark's "use these labels")."""

    return list(
        dict.fromkeys(
            s["name"]
            for s in _walk(case["reference"]["steps"])
            if s.get("type") in ("tde", "external", "user", "call", "subprocess") and s.get("name")
        )
    )


def run_case(case: dict[str, Any], model: str, with_labels: bool = False) -> dict[str, Any]:
    """Draft one case and score it; a failed draft scores 0 and keeps its attempts and tokens.

    ``with_labels``: the published benchmark's prompt form, the description plus the activity
    labels the model must use; ``labels_verbatim`` is the share of them found verbatim.
    """

    row: dict[str, Any] = {
        "key": case["key"],
        "valid": False,
        "simulated": False,
        "repair_attempts": 0,
        "f1_activities": 0.0,
        "f1_gateways": 0.0,
        "f1": 0.0,
        "fitness": 0.0,
        "precision": 0.0,
        "behaviour_f": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "latency_s": 0.0,
    }
    labels = reference_labels(case) if with_labels else None
    if labels:
        row["labels_verbatim"] = 0.0
    usage = Usage()
    started = time.perf_counter()
    try:
        cand, attempts = draft_document(
            case["prompt"], case["key"], model, max_repairs=MAX_REPAIRS, usage=usage, labels=labels
        )
    except DraftFailed as exc:
        attempts = exc.attempts
        row["error"] = str(exc)
        cand = None
    except Exception as exc:  # a provider or tooling failure is a result for this case, not a crash
        attempts = []
        row["error"] = f"{type(exc).__name__}: {exc}"
        cand = None
    row["latency_s"] = round(time.perf_counter() - started, 2)
    row["repair_attempts"] = max(len(attempts) - 1, 0)
    row["input_tokens"], row["output_tokens"] = _tokens_of(attempts)
    if not attempts:
        row["input_tokens"], row["output_tokens"] = usage.input_tokens, usage.output_tokens
    if cand is not None and cand.xml:
        row["valid"] = cand.validation.valid
        sim = cand.simulation
        row["simulated"] = bool(row["valid"] and sim is not None and not sim.stuck and sim.completed > 0)
        ref = reference_xml(case)
        row.update(score_xml(cand.xml, ref))
        beh = behaviour_scores(cand.xml, ref, runs=BEHAVIOUR_RUNS)
        row.update(
            fitness=round(beh.fitness, 4),
            precision=round(beh.precision, 4),
            behaviour_f=round(beh.f_score, 4),
        )
        if labels:
            names = {n.name for n in parse(cand.xml.encode(), name="draft.bpmn").nodes.values()}
            row["labels_verbatim"] = round(sum(1 for lab in labels if lab in names) / len(labels), 4)
    return row


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cases": len(rows),
        "valid_rate": _mean([1.0 if r["valid"] else 0.0 for r in rows]),
        "simulation_pass_rate": _mean([1.0 if r["simulated"] else 0.0 for r in rows]),
        "mean_repair_attempts": _mean([r["repair_attempts"] for r in rows]),
        "mean_f1_activities": _mean([r["f1_activities"] for r in rows]),
        "mean_f1_gateways": _mean([r["f1_gateways"] for r in rows]),
        "mean_f1": _mean([r["f1"] for r in rows]),
        "mean_fitness": _mean([r["fitness"] for r in rows]),
        "mean_precision": _mean([r["precision"] for r in rows]),
        "mean_behaviour_f": _mean([r["behaviour_f"] for r in rows]),
        **(
            {"labels_verbatim_rate": _mean([r["labels_verbatim"] for r in rows])}
            if rows and all("labels_verbatim" in r for r in rows)
            else {}
        ),
        "total_tokens": sum(r["input_tokens"] + r["output_tokens"] for r in rows),
        "mean_latency_s": _mean([r["latency_s"] for r in rows]),
    }


def run_authoring_eval(
    model: str | None = None,
    limit: int | None = None,
    cases_dir: Path | None = None,
    with_labels: bool = False,
) -> dict[str, Any]:
    """Run the suite (first ``limit`` cases) against ``model``; returns per-case rows and a summary."""
    model = model or default_model()
    cases = load_cases(cases_dir)
    if limit is not None:
        cases = cases[: max(limit, 0)]
    rows = []
    for n, case in enumerate(cases, 1):
        progress(f"eval {n}/{len(cases)}: {case['key']}")
        rows.append(run_case(case, model, with_labels=with_labels))
    return {
        "model": model,
        "mode": "labels" if with_labels else "description",
        "cases": rows,
        "summary": summarise(rows),
    }


__all__ = ["load_cases", "check_reference", "reference_xml", "score_xml", "run_authoring_eval"]
