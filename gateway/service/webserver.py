"""A waitress server in a background thread that stops gracefully.

waitress has no stop() of its own. Stopping here: stop accepting, let the
requests in progress finish and their answers flush, then close every channel
*from the server's own loop thread* (through its trigger), so nothing races the
loop, whose map then empties and whose thread ends.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class ThreadedServer:
    def __init__(self, server: Any, name: str = "web") -> None:
        self.server = server
        # Set after creation: waitress converts its own option with int(), and a
        # 0 timeout would make the select loop spin. 0.2 s bounds how long stop() waits.
        server.adj.asyncore_loop_timeout = 0.2
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = False

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def start(self) -> ThreadedServer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self._stopping:
                raise

    def _in_loop(self, fn: Any, wait: float = 2.0) -> None:
        done = threading.Event()

        def thunk() -> None:
            try:
                fn()
            finally:
                done.set()

        try:
            self.server.trigger.pull_trigger(thunk)
        except OSError:
            # The loop has already ended and closed its trigger (seen under load when stop races
            # the loop's own shutdown): nothing runs there any more, so run it here.
            thunk()
            return
        done.wait(wait)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopping:
            return
        self._stopping = True
        server = self.server
        # Stop accepting: close the listening socket only (server.close() would also close the
        # trigger that worker threads still pull when their answers are ready).
        self._in_loop(lambda: server.asyncore.dispatcher.close(server))
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)  # requests in progress finish
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
            getattr(ch, "total_outbufs_len", 0) for ch in list(server._map.values())
        ):
            time.sleep(0.02)  # their answers are still being written out
        self._in_loop(lambda: server.asyncore.close_all(server._map))
        self._thread.join(5)
