"""A TCP proxy in front of a real service that can black-hole it on command (the fault suite and integration
tests).

While forwarding, every accepted connection is piped to ``target`` both ways. After ``blackhole()`` the proxy
keeps every socket open but reads and sends nothing, and keeps accepting new connections (the kernel completes
the handshake) without ever answering them: to its clients the service looks alive at the TCP level and never
replies, which no client-side error or server-side timeout (PostgreSQL's ``statement_timeout``) ends.
``heal()`` ends the black hole the way a partition usually ends for long-lived connections: the connections held
through it are reset (their clients reconnect) and new ones are forwarded again.
"""

from __future__ import annotations

import selectors
import socket
import threading


class BlackholeProxy:
    """``with BlackholeProxy(("127.0.0.1", 5433)) as proxy:`` clients connect to ``proxy.port``."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", port), backlog=64)
        self._listener.settimeout(0.2)  # a close from another thread does not wake a blocked accept()
        self.port: int = self._listener.getsockname()[1]
        self._holed = threading.Event()
        self._closed = threading.Event()
        self._generation = 0  # heal() starts a new one: the pipes of older connections end
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._listener]
        self._accepter = threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True)
        self._accepter.start()

    def __enter__(self) -> BlackholeProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def blackhole(self) -> None:
        """From now on nothing is read or forwarded on any connection, old or new; all stay open."""
        self._holed.set()

    def heal(self) -> None:
        """Reset every connection held so far (old ones and those accepted in the hole) and forward again."""
        with self._lock:
            held, self._sockets = self._sockets[1:], self._sockets[:1]
            self._generation += 1
        self._holed.clear()
        for sock in held:
            try:
                sock.close()
            except OSError:
                pass

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._keep(client)
            if self._holed.is_set():
                continue  # accepted and never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._keep(upstream)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        generation = self._generation
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ)
            sel.register(b, selectors.EVENT_READ)
            while not self._closed.is_set() and generation == self._generation:
                if self._holed.is_set():
                    self._closed.wait(0.2)  # read nothing: the peers' data stays in the kernel's buffers
                    continue
                for key, _ in sel.select(0.1):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    if self._holed.is_set():
                        break
                    try:
                        data = src.recv(65536)
                        if not data:
                            raise OSError("closed")
                        peer[src].sendall(data)
                    except OSError:
                        a.close()
                        b.close()
                        return

    def close(self) -> None:
        """Close every socket (the clients see their connections reset or closed)."""
        self._closed.set()
        with self._lock:
            socks, self._sockets = self._sockets, []
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass
        # the closed listener lingers until the accept() in progress returns (its 0.2 s timeout): wait for it,
        # so that the port can be bound again at once
        self._accepter.join(5)
