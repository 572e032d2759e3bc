"""The agencies' webhook endpoint, under the chaos run's control: up, down (connection
refused: nothing listens; or 503 to every request) or slow (answers after longer than
the notifier's timeout). One server for every agency (`/hooks/<agency>`).

A request counts as delivered when the endpoint answers it 2xx: in slow mode that is
after the delay (the agency's system took it, however late the answer came)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chaos.ledger import Ledger

UP, REFUSE, UNAVAILABLE, SLOW = "up", "refuse", "503", "slow"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class AgencyEndpoint:
    def __init__(self, ledger: Ledger, *, port: int, slow_seconds: float = 3.0):
        self.ledger = ledger
        self.port = port
        self.slow_seconds = slow_seconds
        self.mode = UP
        self.requests = 0
        self.answered: dict[int, int] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        if mode == REFUSE:
            self.mode = mode
            self._close()
            return
        if self._server is None:
            self._listen()
        self.mode = mode

    def close(self) -> None:
        self._close()

    def _count(self, status: int) -> None:
        with self._lock:
            self.answered[status] = self.answered.get(status, 0) + 1

    def _listen(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, so "down" means down for every client
            # at once, with no kept-alive connection still being served.

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with endpoint._lock:
                    endpoint.requests += 1
                mode = endpoint.mode
                if mode in (UNAVAILABLE, REFUSE):  # REFUSE: one that slipped in as it closed
                    self._answer(503)
                    return
                if mode == SLOW:
                    time.sleep(endpoint.slow_seconds)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {}
                endpoint.ledger.add(
                    "webhook",
                    agency=self.path.rsplit("/", 1)[-1],
                    idempotency_key=headers.get("idempotency-key"),
                    ce_id=headers.get("ce-id"),
                    ce_type=headers.get("ce-type"),
                    round=headers.get("e112-round"),
                    report_id=data.get("report_id"),
                    dispatch_id=data.get("dispatch_id"),
                    new_report_id=data.get("new_report_id"),
                    mode=mode,
                )
                self._answer(200)

            def _answer(self, status: int) -> None:
                endpoint._count(status)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the notifier gave up waiting (slow mode)

            def log_message(self, *args):
                pass

        for _ in range(50):  # the port may linger a moment after a close
            try:
                self._server = _Server(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"cannot listen on port {self.port} again")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="agency-endpoint")
        self._thread.start()

    def _close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
