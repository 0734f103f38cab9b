"""The ``redis-chat-history`` click group and how errors become one line and an exit code."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoPermissionError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._version import __version__
from ..errors import (
    ChatHistoryError,
    CorruptMessageError,
    InvalidOptionError,
    InvalidSessionIdError,
    WrongTypeError,
)
from ._output import (
    EXIT_CODES_HELP,
    EXIT_CONNECTION,
    EXIT_DATA,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
)

__all__ = ["main"]


def error_to_cli(error: Exception) -> CliError | None:
    """The one-line message and exit code for an error a command let through, or None
    for a bug (which keeps its traceback)."""
    message = str(error).strip() or type(error).__name__
    if isinstance(error, (CorruptMessageError, WrongTypeError)):
        return CliError(message, EXIT_DATA)
    if isinstance(error, (InvalidSessionIdError, InvalidOptionError)):
        return CliError(message, EXIT_USAGE)
    if isinstance(error, ChatHistoryError):
        return CliError(message, EXIT_DATA)
    if isinstance(error, (AuthenticationError, AuthorizationError)):
        return CliError(f"authentication failed: {message}", EXIT_CONNECTION)
    if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
        return CliError(f"cannot reach the server: {message}", EXIT_CONNECTION)
    if isinstance(error, ResponseError) and "DB index" in message:
        return CliError(f"no such database on this server ({message})", EXIT_USAGE)
    if isinstance(error, NoPermissionError) or (
        isinstance(error, ResponseError) and message.startswith(("NOPERM", "NOAUTH"))
    ):
        return CliError(f"the server refused: {message}", EXIT_CONNECTION)
    if isinstance(error, RedisError):
        return CliError(f"redis error: {message}", EXIT_DATA)
    if isinstance(error, (ConnectionError, TimeoutError)):  # OS-level, e.g. from a socket
        return CliError(f"cannot reach the server: {message}", EXIT_CONNECTION)
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. under a test runner)
        pass


class ChatHistoryGroup(click.Group):
    """A click group that reports library and Redis errors as ``error: ...`` plus an exit
    code (see :data:`EXIT_CODES_HELP`) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # the reader went away (`... | head`): stop quietly
            _silence_stdout()
            raise click.exceptions.Exit(0) from None
        except KeyboardInterrupt:
            raise CliError("interrupted", EXIT_INTERRUPTED) from None
        except Exception as error:
            translated = error_to_cli(error)
            if translated is None:
                raise
            raise translated from error


@click.group(
    cls=ChatHistoryGroup,
    invoke_without_command=True,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="redis-chat-history")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Browse, search and manage LLM chat histories stored in plain Redis.

    Works with any server redis-chat-history supports (Redis, Valkey, Memorystore,
    ElastiCache, Redis Cloud; standalone, Sentinel or Cluster) and, when no URL is given,
    with the embedded redis-server the demo uses. Every command takes --url,
    --password-stdin, --timeout and --json.
    """
    if ctx.invoked_subcommand is None:  # no command: show the help, successfully
        click.echo(ctx.get_help())
