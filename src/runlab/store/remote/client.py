"""HTTP to ``runlab server``: one persistent connection per thread, tokens, errors as runlab's.

Built on the standard library's ``http.client`` rather than urllib3 or httpx on purpose: a training
script imports this, and its start-up is part of every run (urllib3 alone costs about 110 ms of import
here, ``http.client`` a few). What it adds is small: a keep-alive connection per thread, reopened once
when the server closed an idle one; timeouts; and the translation of every failure into runlab's
errors, once:

- cannot connect, connection lost, timeout, 502/503/504 -> :class:`StoreUnavailableError` (the tracking
  layer journals the points and replays them later);
- 401 / 403 -> :class:`AuthenticationError` / :class:`PermissionDeniedError` with the server's message;
- any other error -> the class the server names in its JSON error (one of :mod:`runlab.core.errors`),
  else :class:`StoreError`.

The token: the ``token`` argument, else ``RUNLAB_TOKEN``, else the server's entry in
``$RUNLAB_HOME/credentials.json`` (``{"http://host:port": "rl_..."}``), which must be readable by its
owner only (mode 0600): a wider file is refused, since anyone who reads it can act as you.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import threading
import urllib.parse
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Mapping

from runlab.core import errors as errs
from runlab.core.errors import ConfigError, RunlabError, StoreError, StoreUnavailableError, UserError

TOKEN_ENV = "RUNLAB_TOKEN"
CREDENTIALS_FILE = "credentials.json"
DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0
_RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.BadStatusLine)


def normalize_url(url: str) -> str:
    """``url`` as ``scheme://host:port`` (no trailing slash), or :class:`ConfigError` saying what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("a runlab server URL is needed, for example http://127.0.0.1:8765")
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"{url!r} is not a runlab server URL: give http://host:port or https://host:port")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ConfigError(f"{url!r}: a server URL holds no user, password, query or fragment; give the token "
                          f"with {TOKEN_ENV} or the credentials file")
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"


def credentials_path() -> Path:
    from runlab.core.settings import load_settings

    return load_settings().home / CREDENTIALS_FILE


def read_credentials(path: Path | None = None) -> dict[str, str]:
    """The credentials file's tokens by server URL; {} when there is none. Refused when others can read it."""
    path = path or credentials_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the credentials file {path}: {exc.strerror or exc}", path=path) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the credentials file {path} can be read by others (mode {stat.S_IMODE(st.st_mode):o}): "
                          f"anyone who reads it can act as you; run `chmod 600 {path}`", path=path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the credentials file {path} is not JSON ({exc}): it maps server URLs to tokens, "
                          '{"http://host:port": "rl_..."}', path=path) from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f"the credentials file {path} must map server URLs to tokens", path=path)
    return {normalize_url(k): v for k, v in data.items()}


def save_credentials(url: str, token: str, path: Path | None = None) -> Path:
    """Record ``token`` for server ``url`` in the credentials file (created with mode 0600)."""
    path = path or credentials_path()
    current = read_credentials(path)
    current[normalize_url(url)] = token
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(current, out, indent=2)
    os.replace(tmp, path)
    return path


def find_token(url: str, token: str | None = None) -> str | None:
    if token:
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    return read_credentials().get(normalize_url(url))


class Response:
    """A response read whole (``body``), or a stream (``stream``: read it, then ``close()``)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes | None,
                 stream: http.client.HTTPResponse | None = None, conn: http.client.HTTPConnection | None = None):
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream
        self._conn = conn

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def read(self, amt: int | None = None) -> bytes:
        assert self.stream is not None
        return self.stream.read(amt)

    def readinto(self, buffer: Any) -> int:
        assert self.stream is not None
        return self.stream.readinto(buffer)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self._conn is not None:
            self._conn.close()


class ServerClient:
    """Requests to one server with one token; safe to share between threads."""

    def __init__(self, url: str, token: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = normalize_url(url)
        parsed = urllib.parse.urlsplit(self.url)
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (443 if self._https else 80)
        self._base = parsed.path
        self.token = find_token(self.url, token)
        self.timeout_s = timeout_s
        self._conns: dict[int, http.client.HTTPConnection] = {}  # one keep-alive connection per thread
        self._conns_lock = threading.Lock()

    def with_timeout(self, timeout_s: float) -> "ServerClient":
        """This client, with requests that give up after ``timeout_s`` (its own connections)."""
        other = ServerClient.__new__(ServerClient)
        other.__dict__.update(self.__dict__)
        other.timeout_s = timeout_s
        other._conns = {}
        other._conns_lock = threading.Lock()
        return other

    # -- connections ---------------------------------------------------------------------------

    def _new_connection(self, timeout_s: float | None = None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout_s or self.timeout_s)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        key = threading.get_ident()
        with self._conns_lock:
            conn = self._conns.get(key)
            if conn is not None:
                return conn, True
            conn = self._conns[key] = self._new_connection()
            return conn, False

    def _drop_connection(self) -> None:
        with self._conns_lock:
            conn = self._conns.pop(threading.get_ident(), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close every connection this client holds (those of threads that ended too)."""
        with self._conns_lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit, modules may be gone
            pass

    # -- requests ------------------------------------------------------------------------------

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": "runlab-client", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, *, body: bytes | BinaryIO | Iterable[bytes] | None = None,
                headers: Mapping[str, str] | None = None, query: Mapping[str, Any] | None = None,
                stream: bool = False, ok: tuple[int, ...] = (200, 201, 204)) -> Response:
        """Send one request; raise runlab's error for a failure (see the module docstring)."""
        target = self._base + path
        if query:
            target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        all_headers = self.headers(headers)
        if isinstance(body, (bytes, bytearray)):
            all_headers.setdefault("Content-Length", str(len(body)))
        if stream:  # a connection of its own, closed with the response
            conn = self._new_connection()
            try:
                conn.request(method, target, body=body, headers=all_headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise self._unreachable(exc) from exc
            except BaseException:
                conn.close()
                raise
            if resp.status not in ok:
                data = resp.read()
                conn.close()
                raise self._error(resp.status, data, method, path)
            return Response(resp.status, dict(resp.getheaders()), None, stream=resp, conn=conn)
        rewindable = body is None or isinstance(body, (bytes, bytearray))
        for attempt in (0, 1):
            conn, reused = self._connection()
            try:
                conn.request(method, target, body=body, headers=all_headers)
                resp = conn.getresponse()
                data = resp.read()
            except _RETRYABLE as exc:
                self._drop_connection()
                if attempt == 0 and reused and rewindable:
                    continue  # the server closed the idle connection before this request: send it again
                raise self._unreachable(exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                raise self._unreachable(exc) from exc
            except BaseException:  # the body's generator raised (a file changed meanwhile, ^C): the request is
                self._drop_connection()  # half sent, so this connection can carry no other
                raise
            if resp.getheader("Connection", "").lower() == "close":
                self._drop_connection()
            if resp.status not in ok:
                raise self._error(resp.status, data, method, path)
            return Response(resp.status, dict(resp.getheaders()), data)
        raise AssertionError("unreachable")

    def get_json(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query).json()

    def post_json(self, path: str, payload: Any) -> Any:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return self.request("POST", path, body=body, headers={"Content-Type": "application/json"}).json()

    # -- errors --------------------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> StoreUnavailableError:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            why = f"it did not answer within {self.timeout_s:g} s"
        elif isinstance(exc, ConnectionRefusedError):
            why = "nothing listens there (is `runlab server` running?)"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return StoreUnavailableError(f"cannot reach the runlab server at {self.url}: {why}", url=self.url)

    def _error(self, status: int, data: bytes, method: str, path: str) -> RunlabError:
        message, type_name = f"{method} {path}: HTTP {status}", ""
        try:
            payload = json.loads(data)
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            if isinstance(error, dict):
                message = str(error.get("message") or message)
                type_name = str(error.get("type") or "")
        except ValueError:
            if data:
                message += f": {data[:200].decode(errors='replace')}"
        if status == 401:
            cls: type[RunlabError] = errs.AuthenticationError
            hint = "" if self.token else f" (no token was sent: set {TOKEN_ENV} or the credentials file)"
            return cls(f"the runlab server at {self.url} refused the token: {message}{hint}", url=self.url)
        if status == 403:
            return errs.PermissionDeniedError(f"the runlab server at {self.url} refused: {message}", url=self.url)
        if status in (502, 503, 504):
            return StoreUnavailableError(f"the runlab server at {self.url} cannot take it now: {message}", url=self.url)
        named = getattr(errs, type_name, None) if type_name else None
        if isinstance(named, type) and issubclass(named, RunlabError):
            return named(message)
        if status == 404:
            return errs.NotFoundError(message)
        if 400 <= status < 500:
            return UserError(message)
        return StoreError(f"the runlab server at {self.url} failed: {message}", url=self.url)


__all__ = ["CREDENTIALS_FILE", "TOKEN_ENV", "Response", "ServerClient", "find_token", "normalize_url",
           "read_credentials", "save_credentials"]
