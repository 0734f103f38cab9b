"""``embedded status`` and ``embedded stop``: the shared embedded redis-server that commands
use when no URL is given."""

from __future__ import annotations

from typing import Any

import click

from ..embedded import (
    EmbeddedServerError,
    ServerInUseError,
    ServerStatus,
    server_status,
    stop_server,
)
from ._app import main
from ._output import EXIT_CONNECTION, EXIT_NOT_FOUND, EXIT_USAGE, CliError, Output

__all__ = ["embedded_group", "status_cmd", "stop_cmd"]

_json_option = click.option("--json", "json_mode", is_flag=True, help="Print JSON for scripts.")


@main.group("embedded")
def embedded_group() -> None:
    """The embedded redis-server used when no URL is given (data in
    $XDG_DATA_HOME/redis-chat-history/embedded, by default ~/.local/share/...).

    Commands share the one that is running; the last command using it shuts it down.
    """


def _describe(status: ServerStatus) -> str:
    version = f"redis-server {status.version}" if status.version else "redis-server"
    pid = f"pid {status.pid}" if status.pid else "pid unknown"
    port = f"127.0.0.1:{status.port}" if status.port else "port unknown"
    return f"{version}, {pid}, {port}"


@embedded_group.command("status")
@_json_option
def status_cmd(json_mode: bool) -> None:
    """Whether the embedded redis-server is running: pid, port, version, data directory.
    Exits 1 when it is not running."""
    out = Output(json_mode=json_mode)
    try:
        status = server_status()
    except EmbeddedServerError as error:
        raise CliError(str(error), EXIT_CONNECTION) from None
    if json_mode:
        out.json(status.to_dict())
    elif not status.running:
        out.console.print(f"not running (data in {status.data_dir})", markup=False)
    else:
        lines = [f"running: {_describe(status)}", f"data in {status.data_dir}"]
        if status.binary:
            lines.append(f"binary: {status.binary}")
        if not status.answering:
            lines.append("it does not answer (still starting, or hung): `embedded stop` ends it")
        lines.append("in use by a command" if status.in_use else "not in use by any command")
        out.console.print("\n".join(lines), markup=False)
    if not status.running:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


@embedded_group.command("stop")
@click.option("--force", is_flag=True, help="Stop it even while other commands are using it.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for it to exit before it is killed.",
)
@_json_option
def stop_cmd(force: bool, timeout: float, json_mode: bool) -> None:
    """Shut the embedded redis-server down (SHUTDOWN, so the append-only file is flushed)
    and wait until it has exited. Refuses while another command is using it, unless --force.
    Stopping a server that is not running succeeds."""
    out = Output(json_mode=json_mode)
    try:
        status = stop_server(force=force, timeout=timeout)
    except ServerInUseError:
        raise CliError(
            "another redis-chat-history command (or program) is using the embedded "
            "redis-server; end it first, or pass --force",
            EXIT_USAGE,
        ) from None
    except EmbeddedServerError as error:
        raise CliError(str(error), EXIT_CONNECTION) from None
    if json_mode:
        document: dict[str, Any] = {"stopped": status.running, **status.to_dict()}
        del document["running"], document["answering"], document["in_use"]
        out.json(document)
    elif status.running:
        out.console.print(f"stopped the embedded {_describe(status)}", markup=False)
    else:
        out.console.print(f"not running (data in {status.data_dir})", markup=False)
