"""At most once: how a side-effecting call (a loop's tool, a deterministic adapter) runs.

The call is claimed in the store before it runs and its result recorded after; a repeat with
the same idempotency key replays the record. The key is the task's scoped key (a digest of its
owner's namespace and the spec's key, das/store/keys.py), so one owner never replays, blocks or
reaches another's effects. If an earlier call of this key has an unknown
outcome (sent, then timeout; or a worker killed mid-call), nothing side-effecting runs until an
operator resolves it (``das effects resolve``). One implementation for every caller.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from das.errors import OutcomeUnknown
from das.secrets import scrub
from das.store import Store
from das.store.keys import is_scoped
from das.tools.base import Tool, ToolContext, call_key


class EffectBlocked(Exception):
    """A side effect must not run now; the message says why and how to resolve it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def run_once(store: Store | None, tool: Tool, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
    """Run ``tool`` (claiming it when it has side effects and the task has a key).

    Raises ``EffectBlocked`` when an earlier call's outcome is unknown, and for a call whose own
    outcome becomes unknown (after recording it as ``unknown``).
    """
    key_of_task = ctx.idempotency_key
    if not (tool.side_effecting and store and key_of_task):
        try:
            return tool.run(ctx, arguments)
        except OutcomeUnknown as exc:
            raise EffectBlocked(f"{exc.message} (tool {tool.name}, no idempotency key)") from exc
    if not is_scoped(key_of_task):  # a spec's own text never keys an effect: that is a bug, not data
        raise ValueError("side effects are keyed by a scoped key (das.store.keys.scoped_key), not a raw key")
    key = call_key(key_of_task, tool, arguments)
    pending = [k for k in store.pending_effects(key_of_task) if k != key]
    if pending:  # an earlier run left a call whose outcome nobody knows: no side effect at all
        raise EffectBlocked(
            f"an earlier side effect of this idempotency key has an unknown outcome "
            f"({', '.join(pending[:3])}); no further side effect is sent until an operator "
            "resolves it with `das effects resolve KEY --as done|not-done`"
        )
    state, stored = store.claim_effect(key, tool.name)
    if state == "done":
        return stored
    if state in ("started", "unknown"):
        raise EffectBlocked(
            f"{tool.name} was already sent for this idempotency key and its outcome is unknown "
            f"(call key {key}); it is not repeated. Resolve it with "
            f"`das effects resolve {key} --as done|not-done`"
        )
    try:
        result = tool.run(replace(ctx, call_key=key), arguments)
    except OutcomeUnknown as exc:
        store.mark_effect_unknown(key, scrub(exc.message))
        raise EffectBlocked(
            f"{exc.message} (tool {tool.name}, call key {key}); resolve it with "
            f"`das effects resolve {key} --as done|not-done`"
        ) from exc
    except BaseException:
        store.release_effect(key)
        raise
    store.finish_effect(key, json.loads(scrub(json.dumps(result, default=str))))
    return result


__all__ = ["EffectBlocked", "run_once"]
