"""``governance.no-script`` for every process: executable content outside the allow-list.

Why a finding and not only a list: the validation report is what every path reads (drafts,
``das propose``, the nightly curator, re-validation at approval), so flagged content is named
wherever a proposal is looked at. Severity: an error in a PEO (ProcOS orchestrators hold no
inline logic; the older PEO checks in ``rules_camunda`` stay), a warning everywhere else —
such content may be legitimate, and approving it needs the reviewer's explicit
acknowledgement (``das.authoring.queue``), not a rejection by the validator.
"""

from __future__ import annotations

from das.bpmn import model as m
from das.bpmn.executable import AllowList, describe, executable_content
from das.bpmn.rules import Report, Severity, procos_kind

RULE = "governance.no-script"


def _process_of(defs: m.Definitions, element: str | None) -> m.Process | None:
    if element in defs.processes:
        return defs.processes[element]
    if element in defs.nodes:
        return defs.processes.get(defs.nodes[element].process)
    if element in defs.flows:
        return defs.processes.get(defs.flows[element].process)
    return None


def check_executable(defs: m.Definitions, report: Report, allow: AllowList | None = None) -> None:
    """One finding per flagged executable item (none twice on an element the PEO rules already
    flagged as an error)."""
    already = {f.element for f in report.findings if f.rule == RULE and f.severity == "error"}
    for item in executable_content(defs, allow):
        if not item.flagged or item.element in already:
            continue
        proc = _process_of(defs, item.element)
        severity: Severity = "error" if proc is not None and procos_kind(proc) == "peo" else "warning"
        report.add(
            RULE,
            severity,
            item.element,
            f"{describe(item)} is executable content outside the allow-list (guardrails/executable.yaml): "
            "a reviewer must acknowledge it to approve; or move the logic to an external task (adapter or TDE)",
        )


__all__ = ["RULE", "check_executable"]
