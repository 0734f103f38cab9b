"""conftest.py above LangGraph's tests/ in the scratch copy (written by scripts/langgraph_suite.sh).

LangGraph's tests/conftest.py imports the Postgres saver, store and drivers at module level,
although with NO_DOCKER=true no fixture parameter ever uses them. Where they are not installed,
stand-in modules take their place: any name imported from them is a class that refuses to be
used. NO_DOCKER=true is forced here, as it also keeps the upstream cache fixture off
localhost:6379.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any, NoReturn

os.environ["NO_DOCKER"] = "true"

STUBBED = (
    "psycopg",
    "psycopg_pool",
    "langgraph.checkpoint.postgres",
    "langgraph.checkpoint.postgres.aio",
    "langgraph.store.postgres",
    "langgraph.store.postgres.aio",
)


class _NotInstalled:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse(type(self).__name__)

    @classmethod
    def from_conn_string(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(cls.__name__)

    @classmethod
    def connect(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(cls.__name__)


def _refuse(name: str) -> NoReturn:
    raise RuntimeError(f"{name} is a stand-in: Postgres is not installed for this run")


def _stand_in(name: str) -> None:
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    module = types.ModuleType(name, "stand-in written by scripts/langgraph_suite.sh")
    module.__path__ = []  # a package, so that its submodules can be stood in for too

    def __getattr__(attribute: str) -> type:  # noqa: N807 (PEP 562)
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return type(attribute, (_NotInstalled,), {"__module__": name})

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = module


for _name in STUBBED:
    _stand_in(_name)
