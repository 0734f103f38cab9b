"""``python -m redis_chat_history``: the ``redis-chat-history`` command line.

With no arguments it shows the help; ``python -m redis_chat_history demo`` runs the quickstart.
"""

from .cli import main

main(prog_name="redis-chat-history")
