"""The ``das`` command line: a thin boundary over the domain modules.

Each command area lives in its own module (``das/commands/<area>.py``) and is loaded only
when used, so ``das --help`` stays fast and one area's imports never slow another.
Domain errors become one line on stderr and an exit code:
0 ok, 1 negative result or findings, 2 usage error, 3 guardrail stop or policy denial,
4 invalid input, 5 upstream failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from das import __version__
from das.errors import DasError
from das.output import set_quiet

# command name -> "module:attribute"; the attribute is a click command or group.
COMMANDS: dict[str, tuple[str, str]] = {
    "schema": ("das.commands.core:schema", "Print the JSON Schema of a contract."),
    "tde": ("das.commands.core:tde", "List task types and run probabilistic TDEs."),
    "select": ("das.commands.core:select", "Let an LLM team choose the next task among candidates."),
    "bpmn": ("das.commands.bpmn:bpmn", "Compile, validate, simulate and diff BPMN."),
    "serve": ("das.commands.engine:serve", "Run the external-task worker against the engine."),
    "kernel": ("das.commands.engine:kernel", "Start, check and stop the engine and deployments."),
    "draft": ("das.commands.authoring:draft", "Draft a process from a prompt into the queue."),
    "propose": ("das.commands.authoring:propose", "File a BPMN you wrote as a proposal."),
    "queue": ("das.commands.authoring:queue", "Review proposals in the approval queue."),
    "approve": ("das.commands.authoring:approve", "Approve a proposal (humans only)."),
    "reject": ("das.commands.authoring:reject", "Reject a proposal with a comment."),
    "nightly": ("das.commands.nightly:nightly", "Mine engine history and file improvement proposals."),
    "search": ("das.commands.retrieval:search", "Find similar processes and task types by meaning."),
    "api": ("das.commands.api:api", "Serve the HTTP API and the approval page."),
    "policy": ("das.commands.ops:policy", "Explain the merged guardrail policy of a task."),
    "effects": ("das.commands.ops:effects", "List and resolve side effects with unknown outcomes."),
    "user": ("das.commands.users:user", "Add, list and revoke DAS users and their API tokens."),
    "login": ("das.commands.users:login", "Act through a DAS API server as your token's user."),
    "logout": ("das.commands.users:logout", "Forget saved API credentials."),
    "store": ("das.commands.store:store", "Migrate the store, or copy it to PostgreSQL."),
    "models": ("das.commands.models:models", "List, install and verify the embedded models."),
    "eval": ("das.commands.evals:eval_cmd", "Run evaluation suites against a model."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, (target, _) in COMMANDS.items() if _importable(target))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _importable(target: str) -> bool:
    module_name = target.split(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="das")
@click.option("--quiet", "-q", is_flag=True, help="Silence progress messages on stderr.")
def cli(quiet: bool) -> None:  # --quiet is also taken anywhere on the line by main()
    """DAS, the Digital Assistant System of ProcOS.

    Runs guarded LLM loops as external tasks of Camunda 7 / Operaton processes, selects
    tasks for orchestrators, drafts BPMN into an approval queue.

    \b
    Environment (command-line options win over these):
      DAS_HOME        data directory (default ~/.das)
      DAS_MODEL       litellm model string (default local/qwen2.5-coder-1.5b, embedded)
      DAS_ENGINE_URL  engine REST base (default http://localhost:8080/engine-rest)
      DAS_API_URL     act through this DAS API server (with DAS_TOKEN; or `das login`)
      DAS_TOKEN       personal API token (from `das user add`)

    \b
    Exit codes: 0 ok, 1 negative result or findings, 2 usage error,
    3 guardrail stop or policy denial, 4 invalid input, 5 upstream failure.
    """
    if quiet:
        set_quiet(True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map domain errors to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --quiet / -q is accepted anywhere on the line, not only before the sub-command
    cut = args.index("--") if "--" in args else len(args)
    if any(a in ("--quiet", "-q") for a in args[:cut]):
        args = [a for i, a in enumerate(args) if i >= cut or a not in ("--quiet", "-q")]
        set_quiet(True)
    try:
        cli.main(args=args, prog_name="das", standalone_mode=False)
    except DasError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
