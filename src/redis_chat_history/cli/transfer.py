"""Backup and moving commands: ``export``, ``import`` and ``migrate``.

They stream (constant memory however many messages), can be re-run after an interruption
without duplicating anything, and end with a summary; see :mod:`redis_chat_history.transfer`
for the file format and the rules.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TextIO, cast

import click

from ..codec import DEFAULT_MAX_MESSAGE_BYTES
from ..errors import InvalidOptionError
from ..layouts import CommunityLayout, Layout, resolve_layout
from ..transfer import (
    DEFAULT_CHUNK_SIZE,
    TransferSummary,
    check_lines,
    export_sessions,
    file_layout,
    import_sessions,
    migrate_sessions,
)
from ..urls import split_url
from ._app import main
from ._connect import LAYOUT_NAMES, Cli, cli_command_options, with_password
from ._output import EXIT_DATA, EXIT_NOT_FOUND, EXIT_USAGE, CliError, human_bytes

__all__ = ["export_cmd", "import_cmd", "migrate_cmd"]

#: Where ``migrate --to-url`` takes the target's password from when its URL has none.
TARGET_PASSWORD_ENV = "REDIS_CHAT_HISTORY_TO_PASSWORD"
#: Problems listed in the human summary (all of them are in --json, up to 1,000).
SHOWN_PROBLEMS = 20

_LAYOUTS_HELP = (
    "native (chat:{ID}:messages), community (message_store:ID, langchain-community) or "
    "memorystore (the bare ID)"
)


def _layout(name: str, key_prefix: str | None, option: str) -> Layout:
    if key_prefix is None:
        return resolve_layout(name)
    if name != "community":
        raise CliError(f"{option} applies to the community layout only", EXIT_USAGE)
    return CommunityLayout(key_prefix)


def _describe(layout: Layout) -> str:
    if isinstance(layout, CommunityLayout) and layout.key_prefix != "message_store:":
        return f"community layout (key prefix {layout.key_prefix!r})"
    return f"{layout.name} layout"


def _chunk_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--chunk-size",
        type=click.IntRange(1, 100_000),
        default=DEFAULT_CHUNK_SIZE,
        show_default=True,
        help="Messages per read or write round trip.",
    )(function)


def _quiet_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-q", "--quiet", is_flag=True, help="No progress bar and no summary (errors only)."
    )(function)


@contextmanager
def _progress_bar(
    cli: Cli, quiet: bool, description: str, total: int | None, measure: str
) -> Iterator[Callable[[TransferSummary], None] | None]:
    """A progress callback advancing a bar (stderr, terminals only) by ``measure``
    ("bytes" or "messages"); None with --quiet."""
    if quiet:
        yield None
        return
    with cli.out.progress(description, total) as bar:
        done = 0

        def advance(summary: TransferSummary) -> None:
            nonlocal done
            now = summary.bytes if measure == "bytes" else summary.messages
            bar.advance(now - done)
            done = now

        yield advance


def _report(
    cli: Cli,
    summary: TransferSummary,
    headline: str,
    details: dict[str, Any],
    *,
    quiet: bool,
    stdout_is_data: bool = False,
) -> None:
    """Print the summary (JSON or text; on stderr if stdout carries the export), then exit
    non-zero if anything was left out: 1 if only named sessions were missing, else 4."""
    if cli.json_mode:
        document = {"server": cli.server, **details, **summary.to_dict()}
        if stdout_is_data:
            click.echo(json.dumps(document, ensure_ascii=False), err=True)
        else:
            cli.out.json(document)
    elif not quiet:
        console = cli.out.err_console if stdout_is_data else cli.out.console
        rate = summary.messages / summary.seconds if summary.seconds > 0 else 0.0
        console.print(
            f"{headline} in {summary.seconds:.2f} s ({rate:,.0f} messages/s)",
            markup=False,
            highlight=False,
        )
        if summary.dry_run:
            console.print("dry run: nothing was written or deleted", markup=False)
        if summary.skipped:
            console.print(
                f"left out {summary.skipped:,} lists that are not chat sessions (memorystore "
                "layout: other layouts' keys, or no message record first)",
                markup=False,
            )
        for problem in summary.problems[:SHOWN_PROBLEMS]:
            console.print(f"  {problem.kind}: {problem}", markup=False, highlight=False)
        if summary.problem_count > SHOWN_PROBLEMS:
            more = summary.problem_count - SHOWN_PROBLEMS
            console.print(f"  ... and {more} more (--json lists up to 1,000)", markup=False)
    if summary.ok:
        return
    kinds = {problem.kind for problem in summary.problems}
    listed = "" if quiet or cli.json_mode else ", listed above"
    parts = [f"{summary.problem_count} problem(s){listed}"] if summary.problem_count else []
    if not summary.complete and "incomplete" not in kinds:
        parts.append("the input does not end with its end line (an interrupted export?)")
    message = "; ".join(parts)
    code = EXIT_NOT_FOUND if kinds == {"not_found"} and summary.complete else EXIT_DATA
    raise CliError(message, code)


# ---------------------------------------------------------------------------------------


@contextmanager
def _output_file(path: str) -> Iterator[TextIO]:
    """stdout for ``-``; else ``PATH.partial`` (gzip for ``.gz``), renamed to PATH only
    when the export finished, so a file under PATH is never a cut-off export."""
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    partial = path + ".partial"
    try:
        if path.endswith(".gz"):
            stream: TextIO = gzip.open(partial, "wt", encoding="ascii", newline="")  # noqa: SIM115
        else:
            stream = open(partial, "w", encoding="ascii", newline="")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_DATA) from None
    finished = False
    try:
        yield stream
        finished = True
    finally:
        stream.close()
        if finished:
            os.replace(partial, path)


@main.command("export")
@cli_command_options
@click.argument("session_ids", nargs=-1, metavar="[SESSION]...")
@click.option("--prefix", default="", help="Only sessions whose id starts with this (literally).")
@click.option(
    "--layout",
    type=click.Choice(LAYOUT_NAMES),
    default="native",
    show_default=True,
    help=f"Where the sessions are: {_LAYOUTS_HELP}.",
)
@click.option("--key-prefix", metavar="PREFIX", help="The community layout's key prefix.")
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="FILE",
    show_default=True,
    help="Write to FILE (gzip if it ends in .gz) instead of stdout.",
)
@_chunk_option
@_quiet_option
def export_cmd(
    cli: Cli,
    session_ids: tuple[str, ...],
    prefix: str,
    layout: str,
    key_prefix: str | None,
    output: str,
    chunk_size: int,
    quiet: bool,
) -> None:
    """Export sessions as JSON Lines: the SESSIONs named, those starting with --prefix, or
    all of them.

    \b
    One line per message, oldest first, holding the stored element byte for byte:
      {"format": "redis-chat-history", "version": 1, "layout": "native"}
      {"session": "ID", "ttl": 3600}                    (ttl: seconds left, or null)
      {"session": "ID", "index": 0, "raw": "<the stored JSON text>"}
      {"end": true, "sessions": 1, "messages": 1}
    Each session is read in chunks, so memory stays flat. A file is written as
    FILE.partial and renamed to FILE when done. The summary goes to stderr when the
    export goes to stdout. Exit 1 if a named SESSION or the --prefix matched nothing.
    """
    if session_ids and prefix:
        raise CliError("give SESSION ids or --prefix, not both", EXIT_USAGE)
    if not output:
        raise CliError("-o/--output needs a file name (or - for stdout)", EXIT_USAGE)
    if output != "-" and os.path.isdir(output):
        raise CliError(f"-o {output}: is a directory; give a file name", EXIT_USAGE)
    store = cli.store(_layout(layout, key_prefix, "--key-prefix"))
    to_stdout = output == "-"
    with (
        _output_file(output) as stream,
        _progress_bar(cli, quiet, "exporting messages", None, "messages") as progress,
    ):
        summary = export_sessions(
            store,
            stream,
            session_ids=session_ids or None,
            prefix=prefix,
            chunk_size=chunk_size,
            progress=progress,
        )
    where = "stdout" if to_stdout else output
    headline = (
        f"exported {summary.sessions:,} sessions, {summary.messages:,} messages "
        f"({human_bytes(summary.bytes)}) from {_describe(store.config.layout)} to {where}"
    )
    details = {"command": "export", "layout": store.config.layout.name, "output": where}
    _report(cli, summary, headline, details, quiet=quiet, stdout_is_data=to_stdout)
    if summary.sessions == 0 and prefix:
        raise CliError(f"no session id starts with {prefix!r}", EXIT_NOT_FOUND)


# ---------------------------------------------------------------------------------------


class _Prepended(io.RawIOBase):
    """``head`` (bytes already read from ``rest``), then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(view), len(self._head))
            view[:size], self._head = self._head[:size], self._head[size:]
            return size
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


#: The longest first line read to find an export's header (headers are ~100 bytes).
_HEADER_LIMIT = 64 * 1024

#: Where the command keeps stdin once its first line was read for the header (ctx.meta).
_STDIN_KEY = "redis_chat_history.stdin"


def _stdin() -> IO[bytes]:
    stream = click.get_current_context().meta.get(_STDIN_KEY)
    return cast("IO[bytes]", stream) if stream is not None else sys.stdin.buffer


def _first_line(path: str) -> bytes:
    """The first line of the file (stdin for ``-``: put back for the import that follows)."""
    if path == "-":
        head = _stdin().readline(_HEADER_LIMIT)
        rest = io.BufferedReader(_Prepended(head, sys.stdin.buffer))
        click.get_current_context().meta[_STDIN_KEY] = rest
        return head
    with _input_file(path) as (stream, _size):
        return stream.readline(_HEADER_LIMIT)


def _import_layout(file: str, layout: str | None, key_prefix: str | None) -> Layout:
    """--layout (with --key-prefix), else the layout and key prefix the file's header names."""
    if layout is not None:
        return _layout(layout, key_prefix, "--key-prefix")
    try:
        recorded = file_layout(_first_line(file))
    except InvalidOptionError as exc:
        raise CliError(f"{file}: {exc}; choose one with --layout", EXIT_USAGE) from None
    if recorded is None:
        raise CliError(
            f"{file} does not start with an export's header line naming its layout; "
            "choose the target with --layout",
            EXIT_USAGE,
        )
    if key_prefix is not None:
        return _layout(recorded.name, key_prefix, "--key-prefix")
    return recorded


@contextmanager
def _input_file(path: str) -> Iterator[tuple[IO[bytes], int | None]]:
    """The file's bytes (stdin for ``-``, gunzipped for ``.gz``) and its size if known."""
    if path == "-":
        yield _stdin(), None
        return
    try:  # closed below
        stream = (
            cast("IO[bytes]", gzip.open(path, "rb")) if path.endswith(".gz") else open(path, "rb")  # noqa: SIM115
        )
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_DATA) from None
    size = None if path.endswith(".gz") else os.fstat(stream.fileno()).st_size
    try:
        yield stream, size
    except (OSError, EOFError) as exc:  # a damaged gzip stream, a failing disk
        raise CliError(f"cannot read {path}: {exc}", EXIT_DATA) from None
    finally:
        stream.close()


@main.command("import")
@cli_command_options
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--layout",
    type=click.Choice(LAYOUT_NAMES),
    help=f"Where to write the sessions: {_LAYOUTS_HELP}. Default: the layout (and key "
    "prefix) the file's header names, where the sessions were exported from.",
)
@click.option("--key-prefix", metavar="PREFIX", help="The community layout's key prefix.")
@click.option(
    "--max-message-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    show_default=True,
    help="The largest message accepted; a line too long to hold one is reported and "
    "skipped without being read into memory.",
)
@click.option(
    "--session", "session_ids", multiple=True, metavar="ID", help="Only this session (repeatable)."
)
@click.option("--prefix", default="", help="Only sessions whose id starts with this (literally).")
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite target sessions that hold different messages (default: skip, report).",
)
@click.option("--no-ttl", is_flag=True, help="Do not restore the exported ttls.")
@click.option(
    "--no-validate",
    is_flag=True,
    help="Accept elements that are not message records (restoring a damaged backup as is).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Check the whole file first; import nothing if any line is bad (needs a file, not -).",
)
@click.option("--dry-run", is_flag=True, help="Compare with the target and report; write nothing.")
@_chunk_option
@_quiet_option
def import_cmd(
    cli: Cli,
    file: str,
    layout: str | None,
    key_prefix: str | None,
    max_message_bytes: int,
    session_ids: tuple[str, ...],
    prefix: str,
    replace: bool,
    no_ttl: bool,
    no_validate: bool,
    strict: bool,
    dry_run: bool,
    chunk_size: int,
    quiet: bool,
) -> None:
    """Import a JSON Lines export (FILE, or - for stdin; .gz is read as gzip).

    \b
    Safe to run again: messages a session already holds at the same positions are
    skipped, so an interrupted import finishes without duplicates. A target session
    holding different messages is left unchanged and reported (--replace overwrites it).
    Bad lines are reported with their line number. By default the session a bad line is
    in is imported up to the line before it and the rest of that session is skipped
    (never stored with a gap); every other session is imported. With --strict the file
    is checked first and nothing is imported if any line is bad.
    Exit 0 when everything was imported or already there, 4 for bad lines, conflicts or
    an incomplete file (one without its end line).
    """
    if strict and file == "-":
        raise CliError("--strict reads the file twice; give a file, not -", EXIT_USAGE)
    if file == "-" and click.get_current_context().params.get("password_stdin"):
        raise CliError(
            "--password-stdin and reading the export from stdin (-) exclude each "
            "other; give a file, or the password in $REDIS_PASSWORD",
            EXIT_USAGE,
        )
    store = cli.store(_import_layout(file, layout, key_prefix))
    validate = not no_validate
    if strict:
        with (
            _input_file(file) as (stream, size),
            _progress_bar(cli, quiet, "checking", size, "bytes") as progress,
        ):
            checked = check_lines(stream, validate=validate, max_message_bytes=max_message_bytes)
            if progress is not None:
                progress(checked)
        checked.dry_run = False  # a check, not a dry run: the headline says what happened
        if not checked.ok:
            headline = (
                f"checked {file}: {checked.sessions:,} sessions, {checked.messages:,} messages; "
                "nothing was imported"
            )
            _report(cli, checked, headline, {"command": "import", "file": file}, quiet=quiet)
    with (
        _input_file(file) as (stream, size),
        _progress_bar(cli, quiet, "importing (bytes)", size, "bytes") as progress,
    ):
        summary = import_sessions(
            store,
            stream,
            session_ids=session_ids or None,
            prefix=prefix,
            replace=replace,
            restore_ttl=not no_ttl,
            validate=validate,
            dry_run=dry_run,
            chunk_size=chunk_size,
            progress=progress,
            max_message_bytes=max_message_bytes,
        )
    verb = "would import" if dry_run else "imported"
    headline = (
        f"{verb} {summary.sessions:,} sessions into the {_describe(store.config.layout)}: "
        f"{summary.messages:,} messages written, {summary.already_present:,} already there"
        + (f", {summary.replaced:,} sessions replaced" if summary.replaced else "")
        + f"; read {human_bytes(summary.bytes)}"
    )
    details = {"command": "import", "layout": store.config.layout.name, "file": file}
    _report(cli, summary, headline, details, quiet=quiet)


# ---------------------------------------------------------------------------------------


def _target_cli(cli: Cli, to_url: str) -> Cli:
    """A second connection for ``--to-url`` (password from the URL or TARGET_PASSWORD_ENV)."""
    password = os.environ.get(TARGET_PASSWORD_ENV)
    if password and split_url(to_url).password is None:
        to_url = with_password(to_url, password)
    target = Cli(url=to_url, password_stdin=False, timeout=cli.timeout, json_mode=cli.json_mode)
    click.get_current_context().call_on_close(target.close)
    return target


@main.command("migrate")
@cli_command_options
@click.argument("session_ids", nargs=-1, metavar="[SESSION]...")
@click.option(
    "--from",
    "from_layout",
    type=click.Choice(LAYOUT_NAMES),
    required=True,
    help=f"The layout the sessions are in: {_LAYOUTS_HELP}.",
)
@click.option(
    "--to", "to_layout", type=click.Choice(LAYOUT_NAMES), required=True, help="The target layout."
)
@click.option("--from-key-prefix", metavar="PREFIX", help="Key prefix of a community source.")
@click.option("--to-key-prefix", metavar="PREFIX", help="Key prefix of a community target.")
@click.option(
    "--to-url",
    metavar="URL",
    help=f"Copy to this server (default: the same one). Its password, if not in the URL, "
    f"comes from ${TARGET_PASSWORD_ENV}, else $REDIS_PASSWORD / $REDISCLI_AUTH.",
)
@click.option("--prefix", default="", help="Only sessions whose id starts with this (literally).")
@click.option("--move", is_flag=True, help="Delete each source session once its copy is verified.")
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite target sessions that hold different messages (default: skip, report).",
)
@click.option("--no-ttl", is_flag=True, help="Do not copy the sessions' ttls.")
@click.option("--dry-run", is_flag=True, help="Compare and report; write and delete nothing.")
@_chunk_option
@_quiet_option
def migrate_cmd(
    cli: Cli,
    session_ids: tuple[str, ...],
    from_layout: str,
    to_layout: str,
    from_key_prefix: str | None,
    to_key_prefix: str | None,
    to_url: str | None,
    prefix: str,
    move: bool,
    replace: bool,
    no_ttl: bool,
    dry_run: bool,
    chunk_size: int,
    quiet: bool,
) -> None:
    """Copy (or --move) sessions to another layout, another server, or both: the SESSIONs
    named, those starting with --prefix, or all of them.

    \b
    Each session is copied in chunks, then verified: the target must hold the same
    number of messages, byte-identical, in the same order (the layouts differ only in
    key names and list direction). Only then, and only with --move, is the source
    deleted, and only if it has not changed since. Safe to run again after an
    interruption: what was copied is recognised and not copied twice.
    Exit 0 when every session was copied (or was already there), 1 if a named SESSION
    does not exist or --prefix matched nothing, 4 for conflicts or copies that could not be
    verified.
    """
    if session_ids and prefix:
        raise CliError("give SESSION ids or --prefix, not both", EXIT_USAGE)
    source_layout = _layout(from_layout, from_key_prefix, "--from-key-prefix")
    target_layout = _layout(to_layout, to_key_prefix, "--to-key-prefix")
    if to_url is None and source_layout == target_layout:
        raise CliError(
            "source and target are the same keys: choose another --to layout or key prefix, "
            "or another server with --to-url",
            EXIT_USAGE,
        )
    source = cli.store(source_layout)
    target_cli = _target_cli(cli, to_url) if to_url else cli
    target = target_cli.store(target_layout)
    target.client  # connect now: a bad --to-url fails before anything is read  # noqa: B018
    with _progress_bar(cli, quiet, "copying messages", None, "messages") as progress:
        summary = migrate_sessions(
            source,
            target,
            session_ids=session_ids or None,
            prefix=prefix,
            move=move,
            replace=replace,
            restore_ttl=not no_ttl,
            dry_run=dry_run,
            chunk_size=chunk_size,
            progress=progress,
        )
    verb = "would copy" if dry_run else ("moved" if move else "copied")
    to_where = f" on {target_cli.server}" if to_url else ""
    headline = (
        f"{verb} {summary.sessions:,} sessions from the {_describe(source_layout)} to the "
        f"{_describe(target_layout)}{to_where}: {summary.messages:,} messages written, "
        f"{summary.already_present:,} already there"
        + (f", {summary.moved:,} sources deleted" if move else "")
        + (f", {summary.replaced:,} sessions replaced" if summary.replaced else "")
    )
    details = {
        "command": "migrate",
        "from": source_layout.name,
        "to": target_layout.name,
        "to_server": target_cli.server,
        "move": move,
    }
    _report(cli, summary, headline, details, quiet=quiet)
    if prefix and summary.sessions == 0 and not summary.problem_count:
        raise CliError(f"no session id starts with {prefix!r}", EXIT_NOT_FOUND)
