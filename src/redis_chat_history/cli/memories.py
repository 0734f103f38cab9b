"""``memories``: the long-term memory items a LangGraph ``RedisStore`` keeps, read without
the agent that wrote them.

``memories [NAMESPACE]`` lists the items under a namespace prefix (labels joined by dots,
as LangGraph forbids dots in labels: ``memories.user-42``) in the order the store's
``search`` returns them (by creation), with ``--filter`` and pages; ``--key`` shows one
item in full and ``--namespaces`` lists the namespaces instead. LangGraph is an optional
extra, imported inside the command, as for the thread commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from ._app import main
from ._connect import Cli, cli_command_options
from ._output import EXIT_NOT_FOUND, EXIT_USAGE, CliError
from ._render import visible
from .threads import _ago, _is_extra, _missing_extra

if TYPE_CHECKING:
    from langgraph.store.base import Item

    from ..langgraph_store import RedisStore

__all__ = ["memories_cmd"]

#: How much of a value the table shows (``--key`` or ``--json`` show all of it).
_VALUE_WIDTH = 80


def _store(cli: Cli, prefix: str | None, shard_depth: int | None) -> RedisStore:
    """A RedisStore over the command's client (LangGraph imported here, not before)."""
    try:
        from ..langgraph_store import RedisStore
    except ImportError as error:
        if not _is_extra(error):
            raise
        raise _missing_extra(error) from None
    options: dict[str, Any] = {"retry_deadline": 2.0}
    if prefix is not None:
        options["prefix"] = prefix
    if shard_depth is not None:
        options["shard_depth"] = shard_depth
    return RedisStore(cli.client, **options)


def parse_namespace(text: str) -> tuple[str, ...]:
    """``a.b.c`` as ``("a", "b", "c")``; ``""`` is the root (every namespace)."""
    if not text:
        return ()
    labels = tuple(text.split("."))
    if any(not label for label in labels):
        raise CliError(f"namespace {text!r} has an empty label (labels are joined by dots)", 2)
    return labels


def _parse_filters(filters: tuple[str, ...]) -> dict[str, Any]:
    """``field=JSON`` pairs (a value that is not JSON is taken as a string)."""
    parsed: dict[str, Any] = {}
    for item in filters:
        field, eq, raw = item.partition("=")
        if not eq or not field:
            raise CliError(f"--filter wants FIELD=VALUE, got {item!r}", EXIT_USAGE)
        try:
            parsed[field] = json.loads(raw)
        except ValueError:
            parsed[field] = raw
    return parsed


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def _short(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= _VALUE_WIDTH else shown[: _VALUE_WIDTH - 1] + "…"


@main.command("memories")
@cli_command_options
@click.argument("namespace", required=False, default="")
@click.option("--prefix", default=None, help="Key prefix of the RedisStore (default: the store's).")
@click.option(
    "--shard-depth",
    type=click.IntRange(min=1),
    help="The RedisStore's shard_depth= (default: the store's, 2). A store whose keys were "
    "made with another depth is refused.",
)
@click.option("--key", "item_key", metavar="KEY", help="Show this one item in full.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Only items whose value has FIELD (a dotted path) equal to VALUE (JSON); repeatable.",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--namespaces", "list_namespaces", is_flag=True, help="List namespaces, not items.")
@click.option(
    "--max-depth", type=click.IntRange(min=1), help="With --namespaces: truncate to this depth."
)
def memories_cmd(
    cli: Cli,
    namespace: str,
    prefix: str | None,
    shard_depth: int | None,
    item_key: str | None,
    filters: tuple[str, ...],
    limit: int,
    offset: int,
    list_namespaces: bool,
    max_depth: int | None,
) -> None:
    """List the memory items a LangGraph RedisStore keeps under NAMESPACE.

    NAMESPACE is a namespace prefix with its labels joined by dots (``memories.user-42``);
    without it, every namespace. Items come in the order ``store.search`` returns them
    (namespaces, then their items, as created; a prefix shorter than the store's shard
    depth reads every shard it covers). --key
    shows one item of NAMESPACE in full; --namespaces lists the namespaces under it.
    Exits 1 when nothing is found.
    """
    labels = parse_namespace(namespace)
    store = _store(cli, prefix, shard_depth)
    if item_key is not None:
        if not labels or list_namespaces or filters:
            raise CliError("--key needs a NAMESPACE, without --filter or --namespaces", 2)
        _show_item(cli, store.get(labels, item_key, refresh_ttl=False), labels, item_key)
        return
    if list_namespaces:
        found_ns = store.list_namespaces(
            prefix=labels or None, max_depth=max_depth, limit=limit, offset=offset
        )
        if cli.json_mode:
            cli.out.json({"server": cli.server, "namespaces": [list(ns) for ns in found_ns]})
        else:
            for ns in found_ns:
                cli.out.console.print(Text(visible(".".join(ns))))
            cli.out.note(f"{len(found_ns)} namespaces on {cli.server}")
        if not found_ns:
            raise click.exceptions.Exit(EXIT_NOT_FOUND)
        return
    items = store.search(
        labels,
        filter=_parse_filters(filters) or None,
        limit=limit,
        offset=offset,
        refresh_ttl=False,
    )
    if cli.json_mode:
        cli.out.json(
            {
                "server": cli.server,
                "namespace": list(labels),
                "limit": limit,
                "offset": offset,
                "items": [_item_json(item) for item in items],
            }
        )
    elif items:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("namespace", "key", "updated", "value"):
            table.add_column(column, no_wrap=column != "value")
        for item in items:
            table.add_row(
                Text(visible(".".join(item.namespace))),
                Text(visible(item.key)),
                _ago(item.updated_at.isoformat()),
                Text(visible(_short(item.value))),
            )
        cli.out.console.print(table)
        cli.out.note(f"{len(items)} items (offset {offset}) on {cli.server}")
    else:
        cli.out.console.print(f"no items under {namespace or 'the root'!r}", style="dim")
    if not items:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


def _show_item(cli: Cli, item: Item | None, labels: tuple[str, ...], key: str) -> None:
    if item is None:
        raise CliError(f"no item {key!r} in namespace {'.'.join(labels)!r}", EXIT_NOT_FOUND)
    if cli.json_mode:
        cli.out.json({"server": cli.server, "item": _item_json(item)})
        return
    cli.out.console.print(Text(visible(f"{'.'.join(item.namespace)} / {item.key}")), style="bold")
    cli.out.console.print(
        Text(f"created {item.created_at.isoformat()}  updated {item.updated_at.isoformat()}"),
        style="dim",
    )
    cli.out.console.print(
        Text(visible(json.dumps(item.value, ensure_ascii=False, indent=2, default=str)))
    )
