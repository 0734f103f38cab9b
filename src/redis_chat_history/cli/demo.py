"""``demo``: the quickstart (the three upstream snippets, end to end)."""

from __future__ import annotations

import contextlib
import io

import click

from ._app import main
from ._connect import Cli, cli_command_options
from ._output import EXIT_USAGE, CliError

__all__ = ["demo_cmd"]


@main.command("demo")
@cli_command_options
def demo_cmd(cli: Cli) -> None:
    """Run the quickstart: store and read a conversation with both LangChain drop-ins and
    RunnableWithMessageHistory. Without a URL it uses the persistent embedded server, so a
    second run shows the history persisted. Needs the langchain extra."""
    try:
        from .. import quickstart
    except ImportError as exc:
        raise CliError(
            f"the demo needs langchain-core ({exc.name} is missing): "
            "pip install 'redis-chat-history[langchain]'",
            EXIT_USAGE,
        ) from None
    url = cli.resolve_url()
    if url is not None:
        _ = cli.client  # fail fast, with one clear line, if the server is down or refuses us
    if not cli.json_mode:
        status = quickstart.main(url)
    else:
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            status = quickstart.main(url)
        cli.out.json({"ok": status == 0, "output": captured.getvalue().splitlines()})
    if status:
        raise click.exceptions.Exit(status)
