"""Printing for the CLI: rich tables and text for people, one JSON document for scripts,
and the exit codes every command shares.

Errors a command wants to report are raised as :class:`CliError` (or one of the library's
and redis-py's own exceptions); the group turns them into one ``error: ...`` line on stderr
and the exit code below, never a traceback.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_CONNECTION",
    "EXIT_DATA",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Output",
    "human_bytes",
    "human_duration",
]

EXIT_OK = 0
#: The session, prefix or text asked for matched nothing.
EXIT_NOT_FOUND = 1
#: Bad command line (click's own code).
EXIT_USAGE = 2
#: The server cannot be reached, refused the password or the command (ACL), or timed out.
EXIT_CONNECTION = 3
#: Stored data is corrupt, of the wrong Redis type, or a file to import is unreadable.
EXIT_DATA = 4
#: Interrupted (Ctrl-C), as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 nothing found (unknown session, no match); 2 usage error; "
    "3 cannot connect, wrong password, permission denied or timeout; "
    "4 bad data (corrupt message, wrong key type, unreadable file); 130 interrupted (Ctrl-C)."
)

# Characters JSON may carry raw but a terminal would act on (C1 controls, DEL, bidi
# overrides) or stdout cannot encode (lone surrogates): written as \uXXXX escapes, which
# decode to the same text. json.dumps escapes the C0 controls itself.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def dump_json(document: Any, indent: int | None = None) -> str:
    """JSON with non-ASCII text kept readable, and the characters above escaped."""
    text = json.dumps(document, indent=indent, ensure_ascii=False, default=str)
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class CliError(click.ClickException):
    """An error reported as one ``error: ...`` line on stderr with a chosen exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_NOT_FOUND) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class Output:
    """Where a command prints: ``json_mode`` selects one JSON document (or JSON Lines for
    streaming commands) on stdout; otherwise rich renders to ``console``. Notes and
    progress go to stderr so stdout stays parseable."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False, soft_wrap=False)
        self.err_console = Console(stderr=True, highlight=False)

    def json(self, document: Any) -> None:
        """Print one JSON document (indented, stable key order as given)."""
        click.echo(dump_json(document, indent=2))

    def json_line(self, document: Any) -> None:
        """Print one JSON Lines record and flush it (for streaming commands)."""
        click.echo(dump_json(document))
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, on stderr (not part of any output)."""
        self.err_console.print(text, markup=False, highlight=False, style="dim")

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[ProgressBar]:
        """A progress bar on stderr, shown only to a person at a terminal (not in --json)."""
        enabled = not self.json_mode and self.err_console.is_terminal
        if not enabled:
            yield ProgressBar(None, None)
            return
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err_console,
            transient=True,
        )
        with bar:
            task = bar.add_task(description, total=total)
            yield ProgressBar(bar, task)


class ProgressBar:
    """A handle to advance a progress bar that may be switched off."""

    def __init__(self, bar: Progress | None, task: Any) -> None:
        self._bar, self._task = bar, task

    def advance(self, amount: int = 1, total: int | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=amount, total=total)


def human_bytes(size: int | None) -> str:
    """``1536`` -> ``1.5 KB`` (powers of 1024); blank for unknown."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """``3725`` -> ``1h2m``; blank for unknown."""
    if seconds is None:
        return ""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"
