"""Deploy approved proposals: to the engine when one is configured, else a local registry.

Nothing is written anywhere (registry file, engine, TDE wrapper) before ``Queue.deployable``
has re-derived from the append-only history that the current artifact is approved.

"Configured" means ``DAS_ENGINE_URL`` is set (or a URL is passed). The deployment is named by
proposal id and version and uses deploy-changed-only, so retrying a deployment is safe. The
process gets ``camunda:versionTag`` = the proposal's version, so the engine shows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from das.authoring.queue import ApprovalRefused, Queue
from das.bpmn.ns import BPMN_NS, CAMUNDA_NS
from das.camunda.client import EngineClient
from das.config import das_home
from das.contracts import Proposal
from das.errors import InvalidInput, UpstreamError
from das.names import task_type_problem


@dataclass
class DeployOutcome:
    ok: bool
    target: str
    message: str
    deployment_id: str | None = None


def with_version_tag(xml: str, version: str) -> str:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml.encode(), parser)
    for process in root.iter(f"{{{BPMN_NS}}}process"):
        process.set(f"{{{CAMUNDA_NS}}}versionTag", version)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


def engine_configured(url: str | None = None) -> str | None:
    return url or os.environ.get("DAS_ENGINE_URL") or None


def deploy_proposal(proposal: Proposal, engine_url: str | None = None) -> DeployOutcome:
    """Hand one approved proposal to its target; never raises for an engine failure."""
    check_wrappers(proposal)
    url = engine_configured(engine_url)
    xml = (
        with_version_tag(proposal.artifact, proposal.version)
        if proposal.kind == "process"
        else proposal.artifact
    )
    if url is None:
        folder = das_home() / "registry" / proposal.key
        folder.mkdir(parents=True, exist_ok=True)
        path: Path = folder / f"{proposal.version}.bpmn"
        path.write_text(xml)
        return DeployOutcome(
            True,
            "local-registry",
            f"no engine configured (DAS_ENGINE_URL unset): stored in the local registry at {path}",
        )

    try:
        with EngineClient(url) as client:
            result = client.deploy(f"{proposal.id}@{proposal.version}", {f"{proposal.key}.bpmn": xml})
    except UpstreamError as exc:
        return DeployOutcome(False, url, exc.message)
    return DeployOutcome(True, url, f"deployment {result.get('id')} created", result.get("id"))


def check_wrappers(proposal: Proposal) -> None:
    """Every wrapper's task type is an identifier before any file is written (no ``../../x``)."""
    for wrapper in proposal.tde_wrappers:
        problem = task_type_problem(str(wrapper.get("task_type", "")))
        if problem:
            raise InvalidInput(f"proposal {proposal.id}: TDE wrapper {problem}; nothing was deployed")


def register_wrappers(proposal: Proposal) -> list[Path]:
    """Approved TDE wrappers join the registry ($DAS_HOME/tde), so the worker knows their schemas."""
    import yaml

    check_wrappers(proposal)
    folder = (das_home() / "tde").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for wrapper in proposal.tde_wrappers:
        path = folder / f"{wrapper['task_type']}.yaml"
        if path.resolve().parent != folder:  # belt and braces: the identifier check already forbids this
            raise InvalidInput(f"TDE wrapper path {path} leaves {folder}")
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(
            yaml.safe_dump(
                {
                    **wrapper,
                    "description": wrapper.get("description", "") + f" (approved with {proposal.id})",
                },
                sort_keys=False,
            )
        )
        tmp.replace(path)
        written.append(path)
    return written


def deploy_and_record(queue: Queue, proposal_id: str, engine_url: str | None = None) -> Proposal:
    """Deploy a proposal the history proves approved, and record the outcome.

    ``ApprovalRefused`` (or ``InvalidInput`` for a bad wrapper) is raised before any write.
    """
    proposal = queue.deployable(proposal_id)
    outcome = deploy_proposal(proposal, engine_url)
    if outcome.ok and proposal.tde_wrappers:
        names = [p.stem for p in register_wrappers(proposal)]
        outcome.message += f"; TDE wrappers registered: {', '.join(names)}"
    return queue.record_deploy(
        proposal_id, outcome.ok, outcome.message, outcome.target, outcome.deployment_id
    )


@dataclass
class PendingOutcome:
    proposal: Proposal
    refused: str | None = None


def deploy_pending(queue: Queue | None = None, engine_url: str | None = None) -> list[PendingOutcome]:
    """What the kernel calls at start: every approved-but-undeployed proposal.

    One whose approvals do not hold up is refused (and audited), never deployed, and does
    not stop the others.
    """
    queue = queue or Queue()
    out = []
    for p in queue.pending_deploys():
        try:
            out.append(PendingOutcome(deploy_and_record(queue, p.id, engine_url)))
        except (ApprovalRefused, InvalidInput) as exc:
            queue.store.audit("kernel", "deploy.refused", p.id, {"reason": exc.message})
            out.append(PendingOutcome(p, exc.message))
    return out


__all__ = [
    "DeployOutcome",
    "PendingOutcome",
    "check_wrappers",
    "deploy_and_record",
    "deploy_pending",
    "deploy_proposal",
    "engine_configured",
    "register_wrappers",
    "with_version_tag",
]
