"""The worker node's watch on its head: vLLM's workers never notice that the head is gone."""

from __future__ import annotations

import socket
import threading
import time

from vllm_mcp.server import worker_node as worker


def listener() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s, int(s.getsockname()[1])


def test_the_head_answers_while_its_port_listens_and_not_after() -> None:
    s, port = listener()
    assert worker.head_answers("127.0.0.1", port)
    s.close()
    assert not worker.head_answers("127.0.0.1", port)


def test_the_watch_stops_the_node_only_after_the_head_is_gone() -> None:
    s, port = listener()
    gone = threading.Event()
    watch = worker.HeadWatch("127.0.0.1", port, interval=0.05, misses=3, on_gone=gone.set)
    watch.start()
    try:
        time.sleep(0.5)  # ten tries, all answered
        assert not gone.is_set() and not watch.gone
        s.close()
        assert gone.wait(10)
        assert watch.gone
    finally:
        watch.stop()
