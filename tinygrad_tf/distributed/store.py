"""A small key-value store over TCP, for the rendezvous of the processes of one job.

Rank 0 serves it on MASTER_ADDR:MASTER_PORT; every rank connects, sets keys and waits for the
keys of others (torch.distributed's TCPStore does the same job). It carries a few hundred bytes
per rank at start-up (who joined, NCCL's unique id); the tensors themselves go over NCCL.
One JSON object per line each way: {"set": key, "value": v} -> {}, {"get": key} -> {"value": v},
answered once the key exists (or {"error": ...} after the timeout).
"""
import json
import socket
import socketserver
import threading
import time


class StoreTimeout(TimeoutError):
    """A key that no rank set in time: a rank that did not join, or a rendezvous that failed."""


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = allow_reuse_address = True

    def __init__(self, address, timeout):
        super().__init__(address, _Handler)
        self.values, self.changed, self.wait_timeout = {}, threading.Condition(), timeout


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        server = self.server
        for line in self.rfile:
            request = json.loads(line)
            with server.changed:
                if "set" in request:
                    server.values[request["set"]] = request["value"]
                    server.changed.notify_all()
                    reply = {}
                else:
                    found = server.changed.wait_for(lambda: request["get"] in server.values, server.wait_timeout)
                    reply = {"value": server.values[request["get"]]} if found else {"error": "timeout"}
            self.wfile.write((json.dumps(reply) + "\n").encode())


class TCPStore:
    """Serve the store here (is_server) and/or connect to it; set(key, value) and get(key), which
    waits up to `timeout` seconds for another rank to set the key."""

    def __init__(self, host, port, is_server, timeout=300.0):
        self.timeout, self._server = timeout, None
        if is_server:
            try:
                self._server = _Server(("", port), timeout)
            except OSError as e:
                raise RuntimeError(f"cannot serve the rendezvous store on port {port} (MASTER_PORT): {e}") from None
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._socket = self._connect(host, port)
        self._file = self._socket.makefile("rwb")

    def _connect(self, host, port):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return socket.create_connection((host, port), timeout=self.timeout + 5)
            except OSError as e:
                if time.monotonic() > deadline:
                    raise StoreTimeout(f"could not reach the rendezvous store at {host}:{port} (MASTER_ADDR:"
                                       f"MASTER_PORT) within {self.timeout:.0f} s: {e}") from None
                time.sleep(0.1)

    def _ask(self, request):
        self._file.write((json.dumps(request) + "\n").encode())
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise ConnectionError("the rendezvous store closed the connection (did rank 0 exit?)")
        return json.loads(line)

    def set(self, key, value):
        self._ask({"set": key, "value": value})

    def get(self, key):
        reply = self._ask({"get": key})
        if "error" in reply:
            raise StoreTimeout(f"no rank set {key!r} in the rendezvous store within {self.timeout:.0f} s")
        return reply["value"]

    def close(self):
        self._file.close()
        self._socket.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
