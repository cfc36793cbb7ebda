"""DAS's cost per loop iteration against a bare litellm.completion, same provider, same run.

The model is the zero-latency scripted test model (``test/...``) registered as a litellm
custom provider, so both sides pay litellm's own cost and the difference is DAS: guardrail
checks, deadline thread, trace, tool dispatch, idempotency store. Prints the ratio and the
overhead in ms per iteration. Goal: under 2 ms.

    python bench/loop_overhead.py [--iterations 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DAS_HOME", tempfile.mkdtemp(prefix="das-bench-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from das.agents.tde_loop import run_tde
    from das.contracts import TaskSpec
    from das.llm.providers import ensure_registered

    litellm = ensure_registered()
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    policy_file = os.path.join(os.environ["DAS_HOME"], "bench-policy.yaml")
    with open(policy_file, "w") as fh:  # an operator policy may raise limits; a spec may not
        fh.write(f"max_iterations: {args.iterations}\nmax_tokens: 100000000\ntimeout_s: 600\n")
    spec = TaskSpec(task_type="bench", prompt="never finishes", output_schema={"type": "object"})

    def bare() -> float:
        started = time.perf_counter()
        for _ in range(args.iterations):
            litellm.completion(model="test/loop", messages=messages, max_tokens=64)
        return (time.perf_counter() - started) / args.iterations

    def das() -> float:
        started = time.perf_counter()
        result = run_tde(spec, model="test/loop", policy_file=policy_file)
        assert result.stop_reason == "max_iterations" and result.usage.iterations == args.iterations
        return (time.perf_counter() - started) / args.iterations

    bare(), das()  # warm up both paths
    bare_s = statistics.median(bare() for _ in range(args.repeats))
    das_s = statistics.median(das() for _ in range(args.repeats))
    print(f"bare litellm.completion : {bare_s * 1000:8.3f} ms / call")
    print(f"DAS loop iteration      : {das_s * 1000:8.3f} ms / iteration")
    print(f"ratio DAS / bare        : {das_s / bare_s:8.2f}x")
    overhead = (das_s - bare_s) * 1000
    print(
        f"overhead                : {overhead:8.3f} ms / iteration (goal < 2 ms): {'OK' if overhead < 2 else 'OVER'}"
    )


if __name__ == "__main__":
    main()
