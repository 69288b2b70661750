"""HTTP policy shared by both vendor clients: timeouts, safe retries, downloads, cancellation.

Rules (DESIGN.md "Billing safety"):
- a billable request is resent only when it provably did not reach the vendor (connection
  refused / connect timeout) or the vendor says it did not do it (its classifier marks the
  error retryable, e.g. throttling); a read timeout or a dropped connection after sending is
  reported, never resent;
- idempotent requests (GET polls, downloads) are retried on any network error or 429/5xx;
- waits honour Retry-After, back off exponentially with full jitter, and never outlive the
  run's wall-clock deadline; every wait wakes up at once when the run is cancelled.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3

from .errors import Cancelled, VendorError
from .redaction import SCANNED_CHARS, cap_text, host_of, redact_text  # noqa: F401 - cap_text: the shown-text cap

USER_AGENT = "cloud-outpaint/0.1 (+ComfyUI)"
POLL_SLICE = 0.2  # seconds between interrupt checks while waiting
LATE_GRACE = 2.0  # workers' own timeouts end them by the deadline; this is the backstop


class RunControl:
    """Wall-clock deadline and cancel flag of one node run, shared by its worker threads."""

    def __init__(self, timeout_s: float, vendor: str = "", clock: Callable[[], float] = time.monotonic):
        self.timeout_s, self.vendor, self._clock = timeout_s, vendor, clock
        self.started = clock()
        self.deadline = self.started + timeout_s
        self._cancel = threading.Event()

    def elapsed(self) -> float:
        return self._clock() - self.started

    def remaining(self) -> float:
        return self.deadline - self._clock()

    def cancel(self) -> None:
        self._cancel.set()

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
        data = response.json()
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


def send(session: requests.Session, method: str, url: str, *, control: RunControl, billable: bool,
         classify: Callable[[requests.Response], VendorError | None],
         prepare: Callable[[], dict] | None = None, headers: dict | None = None, data=None,
         json_body: dict | None = None, files: dict | None = None,
         connect_timeout: float = 10.0, read_timeout: float = 60.0, backoff: Backoff = Backoff(),
         on_wait: Callable[[str], None] | None = None, stream: bool = False,
         secrets: tuple[str, ...] = ()) -> requests.Response:
    """Send with the retry rules above. `prepare()` returns fresh headers per attempt (signing).

    `classify(response)` returns None for success or the VendorError it means (retryable or not).
    `json_body` is serialised once (compact UTF-8), so every attempt sends the same bytes.
    `secrets` are blanked out of any vendor text carried by the raised error.
    """
    vendor = control.vendor
    if json_body is not None:
        data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", **(headers or {})}
    attempt = 0
    while True:
        control.check("sending the request")
        attempt += 1
        request_headers = {**(headers or {}), **(prepare() if prepare else {})}
        timeout = (connect_timeout, max(1.0, min(read_timeout, control.remaining())))
        try:
            response = session.request(method, url, headers=request_headers, data=data, files=files,
                                       timeout=timeout, stream=stream)
        except requests.RequestException as exc:
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
                raise VendorError(vendor, "NetworkError", "the request could not be made", message=str(exc),
                                  billed=False) from exc
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


def check_download_url(url: str, base_url: str) -> None:
    """Result links are fetched only over https, or from the configured base's own host."""
    parts, base = urlsplit(url), urlsplit(base_url)
    if parts.scheme == "https" or (parts.scheme == base.scheme and parts.netloc == base.netloc):
        return
    raise VendorError("download", "UnsafeURL", f"refusing to download {parts.scheme}://{parts.netloc}: only "
                      f"https links or the service's own host ({base.netloc}) are followed")


def download(session: requests.Session, url: str, *, control: RunControl, base_url: str,
             max_bytes: int = 64 * 2**20, on_wait: Callable[[str], None] | None = None) -> bytes:
    """GET a result link with a size cap; retried freely (downloads cost nothing)."""
    check_download_url(url, base_url)

    def classify(r: requests.Response) -> VendorError | None:
        if r.status_code == 200:
            return None
        meaning = "the result link has expired or never existed" if r.status_code in (403, 404) else \
            "the result link could not be fetched"
        return VendorError(control.vendor, f"HTTP{r.status_code}", meaning, http_status=r.status_code)

    response = send(session, "GET", url, control=control, billable=False, classify=classify,
                    on_wait=on_wait, stream=True)
    with response:
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise VendorError(control.vendor, "ResultTooLarge",
                              f"the result is {int(length) / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB cap")
        chunks, size = [], 0
        for chunk in response.iter_content(1 << 16):
            control.check("downloading the result")
            size += len(chunk)
            if size > max_bytes:
                raise VendorError(control.vendor, "ResultTooLarge",
                                  f"the result is over the {max_bytes / 2**20:.0f} MiB cap")
            chunks.append(chunk)
    return b"".join(chunks)


def run_jobs(jobs: list[Callable[[], object]], *, control: RunControl, max_workers: int,
             poll: Callable[[], None] = lambda: None,
             on_done: Callable[[int, object], None] = lambda i, r: None) -> list:
    """Run jobs on a bounded pool; results in job order.

    The calling thread waits in short slices, calling `poll()` (ComfyUI's interrupt check may
    raise there). On an interrupt or a failed job, jobs not yet started are dropped and workers
    see the run as cancelled; a job's own exception is re-raised with its index as `.job_index`.
    """
    results: list = [None] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="cloud-outpaint")
    futures: dict[Future, int] = {pool.submit(job): i for i, job in enumerate(jobs)}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=POLL_SLICE, return_when=FIRST_COMPLETED)
            for future in done:
                index = futures[future]
                error = future.exception()
                if error is not None:
                    error.job_index = index
                    raise error
                results[index] = future.result()
                on_done(index, results[index])
            poll()
            if pending and control.remaining() < -LATE_GRACE:  # a worker stuck past every timeout
                control.check("waiting for the vendor")
        return results
    except BaseException:
        control.cancel()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
