"""The ``redis-chat-history`` command line (``pip install 'redis-chat-history[cli]'``).

How a command module registers itself (the group is ``main`` in :mod:`._app`)::

    import click
    from ._app import main
    from ._connect import Cli, cli_command_options
    from ._output import EXIT_DATA, CliError

    @main.command("export")
    @cli_command_options            # --url, --password-stdin, --timeout, --json
    @click.argument("session_id")
    def export_cmd(cli: Cli, session_id: str) -> None:
        store = cli.store("native")      # ChatHistoryStore over this command's client
        ...                              # cli.client: the raw redis-py client
        if cli.json_mode:
            cli.out.json({...})          # one JSON document on stdout
        else:
            cli.out.console.print(...)   # rich, for people
        raise CliError("what went wrong", EXIT_DATA)   # -> "error: ..." + exit code

Library errors (ChatHistoryError) and redis-py errors a command lets through are turned
into one ``error: ...`` line and an exit code by the group (``_app.error_to_cli``); exit
codes are in ``_output`` (0 ok, 1 not found, 2 usage, 3 connection/auth, 4 bad data).
Then add the module's import at the bottom of this file.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["main"]

try:
    from ._app import main
except ImportError as _error:  # the [cli] extra is not installed
    if (_error.name or "").split(".")[0] not in {"click", "rich", "markdown_it", "pygments"}:
        raise
    _MISSING = _error.name

    def main(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        """Say how to install the CLI's dependencies (one line) and exit with status 2."""
        sys.stderr.write(
            f"error: the redis-chat-history command needs {_MISSING}: "
            "pip install 'redis-chat-history[cli]'\n"
        )
        raise SystemExit(2)

else:
    # Importing a command module registers its commands on ``main``.
    # threads/thread/memories: LangGraph is imported inside those commands, so they are always
    # registered and say what to install when the [langgraph] extra is missing.
    from . import (  # noqa: F401
        browse,
        demo,
        doctor,
        embedded,
        manage,
        memories,
        threads,
    )

    if importlib.util.find_spec(f"{__name__}.transfer") is not None:
        from . import transfer  # type: ignore[attr-defined,unused-ignore]  # noqa: F401  (export/import/migrate)
