"""``python -m redis_chat_history``: runs the quickstart (the full CLI comes later)."""

from .quickstart import main

raise SystemExit(main())
