"""The sync and asyncio shells cannot drift: the sync one is generated from the asyncio one,
and the two io modules, which hold everything that differs, offer the same functions."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from redis_chat_history import _async_io, _sync_io

ROOT = Path(__file__).resolve().parent.parent


def _unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sync_shell_is_generated_from_the_asyncio_one() -> None:
    """store.py and _sync_driver.py are exactly what scripts/unasync.py writes from
    async_store.py and _async_driver.py (run the script after editing those)."""
    unasync = _unasync()
    for source, target in unasync.FILES.items():
        committed = (unasync.PACKAGE / target).read_text()
        assert committed == unasync.generated(source, target), (
            f"{target} is out of date: run {sys.executable} scripts/unasync.py"
        )


def test_translation_turns_asyncio_code_into_sync_code() -> None:
    """The translation rules themselves, on a sample of what the shells contain."""
    unasync = _unasync()
    source = (
        "async def f(self) -> AsyncIterator[int]:\n"
        "    async with x:\n"
        "        async for y in z:\n"
        "            await self.aclose()\n"
        "    g: Callable[[], Awaitable[T]]\n"
        "    from . import _async_io as _io\n"
    )
    assert unasync.translate(source) == (
        "def f(self) -> Iterator[int]:\n"
        "    with x:\n"
        "        for y in z:\n"
        "            self.close()\n"
        "    g: Callable[[], T]\n"
        "    from . import _sync_io as _io\n"
    )


def test_io_modules_offer_the_same_functions() -> None:
    """What differs between the shells lives in two modules with the same names and
    parameters, so the translated shell finds every function it calls."""
    assert set(_async_io.__all__) == set(_sync_io.__all__)
    for name in _async_io.__all__:
        async_member, sync_member = getattr(_async_io, name), getattr(_sync_io, name)
        if inspect.isfunction(async_member) and inspect.isfunction(sync_member):
            assert list(inspect.signature(async_member).parameters) == list(
                inspect.signature(sync_member).parameters
            ), name
        if inspect.iscoroutinefunction(async_member):
            assert not inspect.iscoroutinefunction(sync_member), name


def test_async_transfers_take_what_the_sync_ones_take() -> None:
    """aexport/aimport/amigrate_sessions mirror the sync functions' parameters (both drive
    the same flows; only awaiting the driver differs)."""
    from redis_chat_history import transfer

    for name in ("export_sessions", "import_sessions", "migrate_sessions"):
        sync, asyncs = getattr(transfer, name), getattr(transfer, "a" + name)
        assert inspect.iscoroutinefunction(asyncs) and not inspect.iscoroutinefunction(sync)
        sync_parameters = inspect.signature(sync).parameters
        async_parameters = inspect.signature(asyncs).parameters
        assert list(sync_parameters) == list(async_parameters), name
        for parameter, twin in zip(
            sync_parameters.values(), async_parameters.values(), strict=True
        ):
            assert (parameter.kind, parameter.default) == (twin.kind, twin.default), name
