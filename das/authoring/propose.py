"""``das propose FILE.bpmn``: file a BPMN a person wrote (e.g. in Camunda Modeler) as a proposal.

The same checks and queue rules as a draft: validated (XSD, references, structure, Camunda,
governance, and every TDE step's task type must be in the registry), simulated, diffed
against its base, filed as a minor version, approved only by someone other than its author.
"""

from __future__ import annotations

from das.authoring import versions
from das.authoring.context import seed_from_processes
from das.authoring.drafter import DraftFailed, _full_diff, check_xml, new_process_diff
from das.authoring.queue import Queue, new_proposal_id
from das.bpmn.parse import parse
from das.bpmn.safexml import BpmnParseError
from das.bpmn.write import to_string
from das.contracts import Evidence, Proposal
from das.errors import InvalidInput, UsageError
from das.identity import Principal
from das.registry import load_registry


def propose_xml(
    xml: bytes,
    *,
    author: Principal,
    key: str | None = None,
    base: str | None = None,
    queue: Queue | None = None,
    name: str = "proposal.bpmn",
) -> Proposal:
    """Check ``xml`` and file it; ``DraftFailed`` (with the findings) when it does not pass."""
    queue = queue or Queue()
    seed_from_processes(queue)
    try:
        defs = parse(xml, name=name)
    except BpmnParseError as exc:
        raise InvalidInput(exc.message) from exc
    executable = [p.id for p in defs.processes.values() if p.is_executable]
    if len(executable) != 1:  # one proposal deploys one process: nothing rides along unreviewed
        raise UsageError(
            f"{name} must hold exactly one executable process (it has {len(executable)}: "
            f"{', '.join(executable) or 'none'}); split it or mark the others non-executable"
        )
    if key is not None and key != executable[0]:
        raise UsageError(f"{name}'s executable process is {executable[0]!r}, not {key!r}")
    key = executable[0]
    if "camunda:historyTimeToLive" not in defs.processes[key].attrs:
        raise DraftFailed(
            f"{name} is not filed: process {key} has no camunda:historyTimeToLive, so the engine "
            'would refuse the deployment; add camunda:historyTimeToLive="P30D"',
            [],
            [],
        )
    if base:
        base_key, base_version = versions.split_ref(base)
        if base_key != key:
            raise UsageError(f"--base {base} names another key than the process {key}")
        base_version = base_version or queue.current_version(key)
    else:
        base_version = queue.current_version(key)
    base_xml = queue.artifact_of(key, base_version) if base_version else None
    if base_version and base_xml is None:
        raise UsageError(f"no process {key}@{base_version} is known; see `das queue list`")
    text = to_string(defs)  # re-serialised as UTF-8 whatever the file's declared encoding
    cand = check_xml(text, key, known_task_types={n: e.executor.kind for n, e in load_registry().items()})
    if cand.problems:
        raise DraftFailed(f"{name} is not filed: {'; '.join(cand.problems[:5])}", cand.problems, [])
    diff = _full_diff(base_xml, text) if base_xml else new_process_diff(key)
    proposal = Proposal(
        id=new_proposal_id(),
        kind="process",
        key=key,
        base_version=base_version,
        version=versions.minor_bump(base_version) if base_version else "1.0.0",
        artifact=text,
        validation=cand.validation,
        simulation=cand.simulation,
        diff=diff,
        origin="file",
        author=author.name,
        rationale=f"Written by {author.name} and proposed from {name}",
        evidence=[Evidence(file=name)],
    )
    return queue.file(proposal, author.proof, author)


__all__ = ["propose_xml"]
