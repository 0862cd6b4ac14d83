"""Runtime: the processes that run the stages over time (the imperative shell's top).

Enters: ``Settings`` and a command (``run``, ``worker``, ``fetch``, ``serve``).
Leaves: passes over due sources (``scheduler``, sharded over processes by ``shards``),
housekeeping (retention), lease owners (``owners``), the wiring of store, fetcher and
web app (``service``) and memory trimming for long-lived processes (``memory``).
"""
