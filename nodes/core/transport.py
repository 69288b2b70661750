"""HTTP policy shared by both vendor clients: timeouts, safe retries, downloads, cancellation.

Rules (DESIGN.md "Billing safety"):
- a billable request is resent only when it provably did not reach the vendor (connection
  refused / connect timeout) or the vendor says it did not do it (its classifier marks the
  error retryable, e.g. throttling); a read timeout or a dropped connection after sending is
  reported, never resent;
- idempotent requests (GET polls, downloads) are retried on any network error or 429/5xx;
- waits honour Retry-After, back off exponentially with full jitter, and never outlive the
  run's wall-clock deadline; every wait wakes up at once when the run is cancelled;
- every body is read in small pieces with a byte cap, the run's deadline checked between reads
  and each read's socket timeout no longer than the time left; the deadline backstop shuts the
  run's sockets, so no read outlives the run;
- redirects are never followed by requests: `download` follows them itself, each hop checked
  by the client's LinkPolicy (hosts.py).
"""

from __future__ import annotations

import email.utils
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urljoin

import requests
import urllib3

from . import lean_json
from .errors import Cancelled, VendorError
from .hosts import LinkPolicy
from .redaction import SCANNED_CHARS, host_of, redact_text

USER_AGENT = "cloud-outpaint/0.1 (+ComfyUI)"
POLL_SLICE = 0.2  # seconds between interrupt checks while waiting
LATE_GRACE = 2.0  # workers' own timeouts end them by the deadline; this is the backstop
WORKER_JOIN_S = 15.0  # after the deadline backstop, how long workers get to finish (e.g. a task cancel)
# A JSON answer is a few KB: this leaves room for a huge echoed message (shown capped) and bounds the
# memory; the Volcengine answer, which may carry the image inline, has its own cap.
MAX_ANSWER_BYTES = 8 * 2**20
READ_CHUNK = 64 * 1024
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class RunControl:
    """Wall-clock deadline and cancel flag of one node run, shared by its worker threads."""

    def __init__(self, timeout_s: float, vendor: str = "", clock: Callable[[], float] = time.monotonic):
        self.timeout_s, self.vendor, self._clock = timeout_s, vendor, clock
        self.started = clock()
        self.deadline = self.started + timeout_s
        self._cancel = threading.Event()
        self._sockets: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        self.aborted = False

    def elapsed(self) -> float:
        return self._clock() - self.started

    def remaining(self) -> float:
        return self.deadline - self._clock()

    def track(self, sock: socket.socket) -> None:
        """A connection of this run: abort() shuts it, so a read blocked on it ends at once."""
        with self._lock:
            self._sockets.add(sock)

    def cancel(self) -> None:
        self._cancel.set()

    def abort(self) -> None:
        """The run is over (its deadline backstop): cancel, and shut every connection it still has.
        (A plain cancel leaves them: an interrupted billable call still reads the answer that names
        its task, so the task can be cancelled.)"""
        self.aborted = True
        self._cancel.set()
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            try:  # socket.socket's own shutdown, also for TLS sockets: another thread may be reading
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self, doing: str = "waiting") -> None:
        if self._cancel.is_set():
            raise Cancelled()
        if self.remaining() <= 0:
            raise VendorError(self.vendor, "Timeout", f"gave up after timeout_s={self.timeout_s:g} s while {doing}",
                              billed=None)

    def sleep(self, seconds: float, doing: str = "waiting") -> None:
        """Sleep that ends early on cancel, and fails if it would pass the deadline."""
        if seconds > self.remaining():
            self._cancel.wait(max(0.0, self.remaining()))
        else:
            self._cancel.wait(max(0.0, seconds))
        self.check(doing)


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 30.0
    max_attempts: int = 8

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before attempt number `attempt` (1 = first retry); Retry-After wins when given."""
        if retry_after is not None:
            return max(0.0, retry_after)
        return random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def redact(error: VendorError, secrets: tuple[str, ...]) -> VendorError:
    """A vendor may echo what it was sent; never let a secret (or a piece of one) ride along in an
    error. Blanks the whole texts; VendorError caps what it shows (redaction.cap_text)."""
    error.message = redact_text(error.message, secrets)
    error.meaning = redact_text(error.meaning, secrets, pieces=False)
    return error


def json_object(response: requests.Response) -> dict | None:
    """The body as a JSON object, or None (HTML error pages, cut-off bodies, arrays)."""
    try:
        data = lean_json.loads(response.content)  # from the bytes as read: no text copy of the body
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def not_json_error(vendor: str, response: requests.Response) -> VendorError:
    """An answer that is not the vendor's JSON: a proxy's page or a cut-off body. Only a 503 is
    taken as 'not processed' (safe to resend); anything else may have been billed."""
    status = response.status_code
    return VendorError(vendor, f"HTTP{status}" if status != 200 else "MalformedResponse",
                       f"the answer was not {vendor}'s JSON" + (" (a gateway/proxy error page)" if status != 200 else ""),
                       message=response.text[:SCANNED_CHARS], http_status=status, retryable=status == 503,
                       billed=False if status == 503 else None,
                       retry_after=parse_retry_after(response.headers.get("Retry-After")))


def new_session() -> requests.Session:
    """One session per run: connection reuse within the run, proxies from the environment."""
    session = requests.Session()
    session.trust_env = True  # HTTPS_PROXY / NO_PROXY are honoured
    session.headers["User-Agent"] = USER_AGENT
    return session


def _not_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", exc.args[0])
        return isinstance(reason, urllib3.exceptions.NewConnectionError) or \
            isinstance(reason, urllib3.exceptions.NameResolutionError)
    return False


def _too_large(control: RunControl, code: str, what: str, cap: int, size: int | None = None) -> VendorError:
    told = f" ({size / 2**20:.1f} MiB)" if size is not None else ""
    return VendorError(control.vendor, code, f"{what}{told} is over the {cap / 2**20:.0f} MiB cap: not read further")


def read_body(response: requests.Response, *, control: RunControl, max_bytes: int, read_timeout: float,
              code: str = "AnswerTooLarge", what: str = "the answer", billable: bool = False) -> bytearray:
    """The whole body of a streamed response, read in pieces of at most READ_CHUNK bytes (after
    any Content-Encoding: a compressed bomb is capped too). VendorError `code` past `max_bytes`;
    the run's Timeout at its deadline, however slowly the bytes come; requests' ReadTimeout /
    ConnectionError when the peer stalls for `read_timeout` or breaks the connection. A cancelled
    run stops the read, except for a `billable` answer: that one names what was paid for."""
    declared = response.headers.get("Content-Length", "").strip()
    declared = int(declared) if declared.isdigit() else None
    if declared is not None and declared > max_bytes:
        raise _too_large(control, code, what, max_bytes, declared)
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    doing = f"reading {what}"
    # one buffer of the declared size when the bytes arrive as sent: no second copy to join the pieces
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    as_sent = declared is not None and encoding == "identity"
    body, size = bytearray(declared if as_sent else 0), 0
    while True:
        if not billable or control.remaining() <= 0:
            control.check(doing)
        if sock is not None:  # one read waits at most until the deadline (+ a hair, so it has passed)
            sock.settimeout(max(0.05, min(read_timeout, control.remaining() + 0.05)))
        try:
            chunk = raw.read1(READ_CHUNK, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as exc:
            if control.remaining() <= 0:
                control.check(doing)
            raise requests.ReadTimeout(exc) from exc
        except urllib3.exceptions.DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if control.aborted:  # a socket shut by abort() reads as a broken connection
                raise Cancelled() from exc
            raise requests.ConnectionError(exc) from exc
        if not chunk:
            break
        body[size:size + len(chunk)] = chunk  # in place while it fits, else the buffer grows
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(control, code, what, max_bytes)
    if control.aborted or (control.cancelled and not billable):  # maybe no end of the body, but of the run
        raise Cancelled()
    del body[size:]  # a body shorter than declared (in place: no copy)
    return body


def _naming_request(error: VendorError, response: requests.Response | None, id_header: str | None) -> VendorError:
    if response is not None and id_header and not error.request_id:
        error.request_id = response.headers.get(id_header) or None
    return error


def send(session: requests.Session, method: str, url: str, *, control: RunControl, billable: bool,
         classify: Callable[[requests.Response], VendorError | None],
         prepare: Callable[[], dict] | None = None, headers: dict | None = None, data=None,
         json_body: dict | None = None, files: dict | None = None,
         connect_timeout: float = 10.0, read_timeout: float = 60.0, backoff: Backoff = Backoff(),
         on_wait: Callable[[str], None] | None = None,
         secrets: tuple[str, ...] = (), max_bytes: int = MAX_ANSWER_BYTES, too_large: str = "AnswerTooLarge",
         what: str = "the answer", id_header: str | None = None) -> requests.Response:
    """Send with the retry rules above. `prepare()` returns fresh headers per attempt (signing).

    `classify(response)` returns None for success or the VendorError it means (retryable or not);
    the body has been read by then (read_body: at most `max_bytes`, else VendorError `too_large`).
    Redirects are answers like any other (classify decides).
    `json_body` is serialised once (compact UTF-8), so every attempt sends the same bytes.
    `secrets` are blanked out of any vendor text carried by the raised error; `id_header` names the
    answer header carrying the vendor's request id, quoted when the body could not be read.
    """
    vendor = control.vendor
    if json_body is not None:
        data = lean_json.dumps(json_body)
        headers = {"Content-Type": "application/json", **(headers or {})}
    attempt = 0
    while True:
        control.check("sending the request")
        attempt += 1
        request_headers = {**(headers or {}), **(prepare() if prepare else {})}
        timeout = (connect_timeout, max(1.0, min(read_timeout, control.remaining())))
        response = None
        try:
            response = session.request(method, url, headers=request_headers, data=data, files=files,
                                       timeout=timeout, stream=True, allow_redirects=False)
            response._content = read_body(response, control=control, max_bytes=max_bytes,
                                          read_timeout=read_timeout, code=too_large, what=what, billable=billable)
            response._content_consumed = True
        except requests.RequestException as exc:
            if response is not None:
                response.close()
            if _not_sent(exc):
                error = VendorError(vendor, "ConnectionFailed", f"could not connect to {host_of(url)} "
                                    "(nothing was sent)", message=str(exc), retryable=True, billed=False)
            elif isinstance(exc, requests.ReadTimeout):
                error = VendorError(vendor, "ReadTimeout",
                                    f"no answer within {timeout[1]:.0f} s" + (
                                        "; the request was sent and may have been processed and billed, "
                                        "so it is not sent again" if billable else ""),
                                    retryable=not billable, billed=None if billable else False)
            elif isinstance(exc, requests.ConnectionError):
                error = VendorError(vendor, "ConnectionLost", "the connection broke after the request was sent" + (
                    "; it may have been processed and billed, so it is not sent again" if billable else ""),
                    message=str(exc), retryable=not billable, billed=None if billable else False)
            else:
                raise _naming_request(VendorError(vendor, "NetworkError", "the request could not be made",
                                                  message=str(exc), billed=False), response, id_header) from exc
            _naming_request(error, response, id_header)
        except VendorError as exc:  # the deadline, or an answer over its cap, while reading the body
            if response is not None:
                response.close()
            if exc.code == too_large:
                exc.billed = None if billable else False
                if billable:
                    exc.meaning += "; the request may have been processed and billed"
            raise _naming_request(exc, response, id_header)
        else:
            error = classify(response)
            if error is None:
                return response
            if not billable and (response.status_code == 429 or response.status_code >= 500):
                error.retryable = True
            response.close()
        if not error.retryable or attempt >= backoff.max_attempts:
            raise redact(error, secrets)
        delay = backoff.delay(attempt, error.retry_after)
        if delay > control.remaining():
            raise redact(error, secrets)
        if on_wait:
            on_wait(f"{error.code}: retry in {delay:.0f} s")
        control.sleep(delay, "waiting to retry")


def download(session: requests.Session, url: str, *, control: RunControl, policy: LinkPolicy,
             max_bytes: int = 64 * 2**20, on_wait: Callable[[str], None] | None = None) -> bytes:
    """GET a result link with a size cap; retried freely (downloads cost nothing). The link and
    every redirect hop (at most MAX_REDIRECTS) must pass `policy`."""

    def classify(r: requests.Response) -> VendorError | None:
        if r.status_code == 200 or (r.status_code in REDIRECTS and r.headers.get("Location")):
            return None
        meaning = "the result link has expired or never existed" if r.status_code in (403, 404) else \
            "the result link could not be fetched"
        return VendorError(control.vendor, f"HTTP{r.status_code}", meaning, http_status=r.status_code)

    for hop in range(MAX_REDIRECTS + 1):
        policy.check(url, "result link" if hop == 0 else "result link's redirect")
        with send(session, "GET", url, control=control, billable=False, classify=classify, on_wait=on_wait,
                  max_bytes=max_bytes, too_large="ResultTooLarge", what="the result") as response:
            if response.status_code == 200:
                return response.content
            url = urljoin(url, response.headers["Location"])
    raise VendorError(control.vendor, "TooManyRedirects", f"the result link redirected more than {MAX_REDIRECTS} times")


def run_jobs(jobs: list[Callable[[], object]], *, control: RunControl, max_workers: int,
             poll: Callable[[], None] = lambda: None,
             on_done: Callable[[int, object], None] = lambda i, r: None) -> list:
    """Run jobs on a bounded pool; results in job order.

    The calling thread waits in short slices, calling `poll()` (ComfyUI's interrupt check may
    raise there). On an interrupt or a job's exception (re-raised here), jobs not yet started are
    dropped and workers see the run as cancelled. When the deadline backstop fires (a worker stuck
    past its timeouts), the run is aborted (its sockets shut), the workers are waited for (at most
    WORKER_JOIN_S, e.g. for a task cancel) and the backstop's Timeout is raised.
    """
    results: list = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="cloud-outpaint")
    futures: dict[Future, int] = {pool.submit(job): i for i, job in enumerate(jobs)}
    pending, overdue = set(futures), False
    try:
        while pending:
            done, pending = wait(pending, timeout=POLL_SLICE, return_when=FIRST_COMPLETED)
            for future in done:
                index = futures[future]
                error = future.exception()
                if error is not None:
                    raise error
                results[index] = future.result()
                on_done(index, results[index])
            poll()
            overdue = bool(pending) and control.remaining() < -LATE_GRACE  # a worker stuck past every timeout
            if overdue:
                control.check("waiting for the vendor")
        return results
    except BaseException:
        control.cancel()
        if overdue:  # the run is over: end the workers' reads
            control.abort()
            wait(futures, timeout=WORKER_JOIN_S)
        raise
    finally:  # idle workers are joined; a busy one (an interrupted billable call) ends by its timeouts
        pool.shutdown(wait=not any(f.running() for f in futures), cancel_futures=True)
