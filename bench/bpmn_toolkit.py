"""Our BPMN validate per MIWG reference file against bpmnlint, same files, same run; plus simulate.

Both sides are timed in-process after a warm-up (schema / rule modules loaded), reading,
parsing and checking each file; the median of ``--repeats`` runs per file. bpmnlint runs in
one Node process (``bench/bpmnlint_runner.mjs``, config ``bench/.bpmnlintrc``), so Node's
start-up is not charged to it. ``ratio`` = bpmnlint ms / our ms: above 1 means we are faster.
If ``das.bpmn.simulate.simulate_file`` exists, each file is also simulated ``--runs`` times.

    npm install --prefix bench            # once: bpmnlint + bpmn-moddle into bench/node_modules
    python bench/bpmn_toolkit.py [--corpus DIR] [--repeats 5] [--runs 100] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpora" / "bpmn-miwg-reference"
sys.path.insert(0, str(REPO))


def time_ours(files: list[Path], repeats: int) -> dict[str, dict[str, Any]]:
    from das.bpmn.validate import validate

    validate(files[0])  # warm-up: loads the XSD once
    out = {}
    for f in files:
        times = []
        report = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            report = validate(f)
            times.append((time.perf_counter() - t0) * 1000)
        assert report is not None
        c = report.counts()
        out[str(f)] = {
            "ms": statistics.median(times),
            "valid": report.valid,
            "errors": c["error"],
            "warnings": c["warning"],
        }
    return out


def time_bpmnlint(files: list[Path], repeats: int) -> tuple[dict[str, dict[str, Any]], str | None]:
    node = shutil.which("node")
    if node is None:
        return {}, "node not found on PATH"
    if not (HERE / "node_modules" / "bpmnlint").is_dir():
        return {}, "bpmnlint not installed: run `npm install --prefix bench`"
    env = {**os.environ, "BPMNLINT_REPEAT": str(repeats)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [node, str(HERE / "bpmnlint_runner.mjs"), str(HERE / ".bpmnlintrc"), *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {}, f"bpmnlint runner failed: {proc.stderr.strip().splitlines()[-1:]}"
    rows = json.loads(proc.stdout)
    out = {r["file"]: {"ms": r["ms"], "findings": r["findings"], "error": r["error"]} for r in rows}
    out["_wall_s"] = {"ms": wall * 1000}
    return out, None


def time_simulate(files: list[Path], runs: int) -> tuple[dict[str, dict[str, Any]], str | None]:
    try:
        sim = importlib.import_module("das.bpmn.simulate")
    except ImportError as exc:
        return {}, f"das.bpmn.simulate not importable ({exc})"
    fn = getattr(sim, "simulate_file", None)
    if fn is None:
        return {}, "das.bpmn.simulate has no simulate_file"
    out = {}
    for f in files:
        t0 = time.perf_counter()
        try:
            res = fn(f, runs=runs, seed=0)
            row = {
                "completed": res.get("completed"),
                "stuck": len(res.get("stuck", [])),
                "coverage": res.get("coverage"),
                "unsupported": len(res.get("unsupported", [])),
            }
        except Exception as exc:  # the bench reports, it does not stop
            row = {"error": f"{type(exc).__name__}: {exc}"[:120]}
        row["ms"] = (time.perf_counter() - t0) * 1000
        out[str(f)] = row
    return out, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs", type=int, default=100, help="simulation runs per file (0 skips simulation)")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = ap.parse_args()

    files = sorted(args.corpus.glob("*.bpmn"))
    if not files:
        sys.exit(f"no .bpmn files in {args.corpus}")
    ours = time_ours(files, args.repeats)
    lint, lint_err = time_bpmnlint(files, args.repeats)
    sim, sim_err = time_simulate(files, args.runs) if args.runs > 0 else ({}, "skipped (--runs 0)")

    if args.json:
        print(
            json.dumps(
                {
                    "ours": ours,
                    "bpmnlint": lint,
                    "simulate": sim,
                    "notes": {"bpmnlint": lint_err, "simulate": sim_err},
                },
                indent=2,
            )
        )
        return

    head = f"{'file':<12}{'ours ms':>9}{'lint ms':>9}{'ratio':>7}  {'ours e/w':>8}{'lint n':>7}"
    head += f"{'sim ms':>10}  {'sim done/stuck/unsup':<20}"
    print(head)
    print("-" * len(head))
    ratios = []
    for f in files:
        o = ours[str(f)]
        lt = lint.get(str(f))
        ratio = lt["ms"] / o["ms"] if lt and o["ms"] > 0 else None
        if ratio:
            ratios.append(ratio)
        s = sim.get(str(f))
        sim_cell = (
            ("error" if "error" in s else f"{s['completed']}/{s['stuck']}/{s['unsupported']}") if s else "-"
        )
        print(
            f"{f.name:<12}{o['ms']:>9.2f}{(lt['ms'] if lt else float('nan')):>9.2f}"
            f"{(ratio or float('nan')):>7.2f}  {o['errors']:>3}/{o['warnings']:<4}{(lt['findings'] if lt else 0):>7}"
            f"{(s['ms'] if s else float('nan')):>10.1f}  {sim_cell:<20}"
        )
    total_ours = sum(ours[str(f)]["ms"] for f in files)
    print("-" * len(head))
    print(f"files: {len(files)}; ours total {total_ours:.1f} ms (median of {args.repeats} per file)")
    if ratios:
        total_lint = sum(lint[str(f)]["ms"] for f in files if str(f) in lint)
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        faster = sum(r > 1 for r in ratios)
        print(
            f"bpmnlint total {total_lint:.1f} ms; ratio bpmnlint/ours: total {total_lint / total_ours:.2f}x, "
            f"geometric mean {geo:.2f}x, min {min(ratios):.2f}x; ours faster on {faster}/{len(ratios)} files"
        )
        print(f"bpmnlint process wall time incl. Node start-up: {lint['_wall_s']['ms'] / 1000:.2f} s")
    else:
        print(f"bpmnlint: {lint_err}")
    if sim:
        done = sum(1 for s in sim.values() if "error" not in s)
        print(
            f"simulate: {args.runs} runs per file, {done}/{len(files)} files without error, "
            f"total {sum(s['ms'] for s in sim.values()) / 1000:.1f} s"
        )
    else:
        print(f"simulate: {sim_err}")


if __name__ == "__main__":
    main()
