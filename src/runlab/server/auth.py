"""Who may call the server, and what they may do: tokens, roles, studio sessions, and the request
checks every request passes first.

:func:`install_auth` puts one pure ASGI middleware in front of the whole app (not Starlette's
``BaseHTTPMiddleware``, which buffers bodies and breaks the app's streaming responses). For every
request, in this order:

1. **Host header** against :attr:`AuthConfig.allowed_hosts` (loopback names and the names the server
   is started with), always, with authentication on or off: a page on another site that rebinds its
   own DNS name to 127.0.0.1 reaches the server with its own name in ``Host`` and is refused (400).
2. **Authentication** (when enabled): ``Authorization: Bearer <token>``, else the studio's session
   cookie. None: 401 saying how to get a token (a browser asking for a page goes to ``/login``).
   Unknown, wrong, expired or revoked: 401 with which. The :class:`Principal` is put in
   ``scope["state"]["principal"]`` (``request.state.principal``; :func:`current_principal`).
3. **Authorization** by role: GET and HEAD need a role that reads (admin, writer, reader), every
   other method one that writes (admin, writer). A run's own token (role ``run``) is let through only
   to the run API (:data:`RUN_TOKEN_PREFIXES`), whose routes check the run with
   :func:`require_run_write`; anything else is 403 for it.
4. **CSRF**: a write authenticated by the session cookie must carry the ``X-CSRF-Token`` header with
   the value of the ``runlab_csrf`` cookie (the studio's scripts send it; another site cannot read
   it), and no foreign ``Origin``; a write with a Bearer token needs none (browsers never add one
   by themselves).
5. **Body size**: ``Content-Length`` over the limit is 413 before the body is read; a chunked body is
   counted as it streams and stopped (413) at the limit. The upload routes (``/api/remote/``) allow
   :attr:`AuthConfig.large_body_bytes`.

Paths under the prefixes that grant something (the run API's, the exempt ones, the upload routes')
are refused (400) when they hold ``.`` or ``..`` segments, so no prefix can be climbed out of.

Exempt from 2-4: ``/healthz``, ``/readyz``, ``/login``, ``/logout``, ``/static/...``, ``/favicon...``.

Studio sessions: ``POST /login`` with a token sets an HttpOnly, SameSite=Strict cookie (Secure when
the server is served over HTTPS) holding ``s1.<token_id>.<expiry>.<nonce>.<hmac>``, signed with a key
kept in the store (meta ``server.session_secret``), so every server process of one store accepts
every session. A session lives :attr:`AuthConfig.session_max_age_s` at most, never past its
token's expiry, and ends when its token is revoked (within the token store's ``recheck_s``, 5 s).

With authentication disabled (``runlab studio``, ``runlab server --no-auth`` on loopback), every request
is ``Principal("local", "admin")``; the Host check and the body limits still apply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, MutableMapping, Sequence
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from runlab.core.errors import AuthenticationError, PermissionDeniedError, StoreError, UserError
from runlab.server.errors import error_body
from runlab.store.sql.tokens import TokenRecord, TokenStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MiB = 1024 * 1024
GiB = 1024 * MiB
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Starlette's TestClient sends "Host: testserver"; it only reaches an app in the same process, so the
# studio without authentication answers to it too (never a server with authentication).
IN_PROCESS_HOSTS = ("testserver",)
SESSION_COOKIE = "runlab_session"
CSRF_COOKIE = "runlab_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_MAX_AGE_S = 7 * 86400
EXEMPT_PATHS = ("/healthz", "/readyz", "/login", "/logout")
EXEMPT_PREFIXES = ("/static/", "/favicon")
RUN_TOKEN_PREFIXES = ("/api/store/", "/api/remote/", "/api/2.0/mlflow/")
LARGE_BODY_PREFIXES = ("/api/remote/",)
CLIENT_PROTOCOL_PREFIXES = ("/api/store/", "/api/remote/")
# POSTs that only read (MLflow's search calls): a reader may make them.
READ_POSTS = ("/api/2.0/mlflow/runs/search", "/api/2.0/mlflow/experiments/search")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_BODY_MAX = 64 * 1024
_HOW = ("an admin creates one with `runlab token create --store URL --name NAME` (add --read-only for a "
        "reader); send it as `Authorization: Bearer <token>` (runlab's client: export RUNLAB_TOKEN=<token>), "
        "or log in to the studio at /login")


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a token's name and role (``admin``, ``writer``, ``reader``, or ``run``:
    a submitted run's own token, which names the run)."""

    name: str
    role: str
    run_id: str | None = None
    token_id: str | None = None

    @property
    def can_read(self) -> bool:
        """Reads the whole workspace (a run's token reads only what its routes let it)."""
        return self.role in ("admin", "writer", "reader")

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "writer")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_write_run(self, run_id: str) -> bool:
        """Writers and admins write any run; a run's token its own run only; readers none."""
        return self.can_write or (self.role == "run" and self.run_id is not None and self.run_id == run_id)

    def may_read_run(self, run_id: str) -> bool:
        """Every reading role reads any run; a run's token its own run only."""
        return self.can_read or (self.role == "run" and self.run_id is not None and self.run_id == run_id)

    def describe(self) -> str:
        if self.role == "run":
            return f"the token of run {self.run_id}"
        return f"token {self.name!r} ({self.role})"


LOCAL_ADMIN = Principal("local", "admin")


@dataclass
class AuthConfig:
    """How :func:`install_auth` guards an app.

    ``enabled``: check tokens (``tokens`` is then required). ``allowed_hosts``: the names the server
    answers to in the Host header (ports ignored; ``"*"`` answers to any, for a reverse proxy that
    checks it). ``https``: the studio is served over HTTPS (session cookies are Secure).
    ``max_body_bytes``: the largest request body; paths under ``large_body_prefixes`` (the streamed
    uploads) may send up to ``large_body_bytes``.
    """

    enabled: bool
    tokens: TokenStore | None = None
    allowed_hosts: list[str] = field(default_factory=lambda: list(LOOPBACK_HOSTS))
    https: bool = False
    max_body_bytes: int = 64 * MiB
    large_body_bytes: int = 5 * GiB
    large_body_prefixes: tuple[str, ...] = LARGE_BODY_PREFIXES
    session_max_age_s: int = SESSION_MAX_AGE_S
    read_posts: tuple[str, ...] = READ_POSTS

    def __post_init__(self) -> None:
        if self.enabled and self.tokens is None:
            raise UserError("authentication is enabled but there is no token store (AuthConfig.tokens)")

    def body_limit(self, path: str) -> int:
        return self.large_body_bytes if path.startswith(self.large_body_prefixes) else self.max_body_bytes


def studio_config(bind_host: str = "127.0.0.1") -> AuthConfig:
    """The embedded studio's (``runlab studio --host``): no authentication; the Host names of
    :func:`allowed_hosts_for` ``bind_host``, and the in-process test client's."""
    return AuthConfig(enabled=False, allowed_hosts=[*allowed_hosts_for(bind_host), *IN_PROCESS_HOSTS])


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind_host: str, extra: Sequence[str] = ()) -> list[str]:
    """The Host names a server listening on ``bind_host`` answers to: loopback's, ``bind_host`` itself,
    for 0.0.0.0 and :: this machine's name and addresses, and ``extra`` (``--allowed-host``)."""
    names = [*LOOPBACK_HOSTS]
    host = bind_host.strip().strip("[]")
    if host in ("0.0.0.0", "::", ""):
        try:
            hostname = socket.gethostname()
            names += [hostname, socket.getfqdn()]
            names += socket.gethostbyname_ex(hostname)[2]
        except OSError:
            pass
    else:
        names.append(host)
    names += list(extra)
    seen: list[str] = []
    for name in names:
        norm = _norm_host(name)
        if norm and norm not in seen:
            seen.append(norm)
    return seen


def check_bind(host: str, auth_enabled: bool) -> None:
    """Refuse to listen beyond loopback without authentication (anyone on the network could read and
    change the workspace); the message says how to turn it on."""
    if auth_enabled or is_loopback(host):
        return
    raise UserError(
        f"refusing to listen on {host} without authentication (--no-auth): anyone who can reach this machine "
        "could read and change the workspace. Create an admin token first: runlab token create --store URL "
        "--name admin --role admin; then start the server without --no-auth (clients send the token as "
        "`Authorization: Bearer <token>`, runlab's client from RUNLAB_TOKEN). Or listen on loopback only: "
        "--host 127.0.0.1.")


# -- helpers for routes ------------------------------------------------------------------------------

def current_principal(request: Request) -> Principal:
    """The request's :class:`Principal` (set by the middleware :func:`install_auth` installs)."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise AuthenticationError(f"this request carries no token: {_HOW}")
    return principal


def require_write(request: Request) -> Principal:
    principal = current_principal(request)
    if not principal.can_write:
        raise PermissionDeniedError(f"{principal.describe()} cannot write: writes need a token of role writer or "
                                    "admin (runlab token create --name NAME --role writer)")
    return principal


def require_admin(request: Request) -> Principal:
    principal = current_principal(request)
    if not principal.is_admin:
        raise PermissionDeniedError(f"{principal.describe()} is not an admin's: this needs a token of role admin "
                                    "(runlab token create --name NAME --role admin)")
    return principal


def require_run_write(request: Request, run_id: str) -> Principal:
    """The principal, when it may write run ``run_id`` (its metrics, files, status); else 403."""
    principal = current_principal(request)
    if not principal.may_write_run(run_id):
        if principal.role == "run":
            why = f"it may write its own run {principal.run_id} only"
        else:
            why = "writes need a token of role writer or admin (runlab token create --name NAME --role writer)"
        raise PermissionDeniedError(f"{principal.describe()} cannot write run {run_id}: {why}", run_id=run_id)
    return principal


def require_run_read(request: Request, run_id: str) -> Principal:
    principal = current_principal(request)
    if not principal.may_read_run(run_id):
        raise PermissionDeniedError(f"{principal.describe()} cannot read run {run_id}: it may read its own run "
                                    f"{principal.run_id} only", run_id=run_id)
    return principal


# -- sessions --------------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign(secret: bytes, text: str) -> str:
    return _b64(hmac.new(secret, text.encode(), hashlib.sha256).digest())


def make_session(secret: bytes, token_id: str, expires_at: float) -> str:
    body = f"s1.{token_id}.{int(expires_at)}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_sign(secret, body)}"


def csrf_for(secret: bytes, session: str) -> str:
    return _sign(secret, "csrf:" + session)


def session_token_id(secret: bytes, session: str, now: float) -> str:
    """The token id a signed session names; AuthenticationError when forged, malformed or expired."""
    parts = session.split(".")
    if len(parts) != 5 or parts[0] != "s1" or not parts[2].isdigit():
        raise AuthenticationError("the studio session cookie is not valid: log in again at /login")
    body, signature = ".".join(parts[:4]), parts[4]
    if not hmac.compare_digest(_sign(secret, body), signature):
        raise AuthenticationError("the studio session cookie is not valid (not signed by this server): log in "
                                  "again at /login")
    if int(parts[2]) <= now:
        raise AuthenticationError("the studio session has expired: log in again at /login")
    return parts[1]


# -- the middleware --------------------------------------------------------------------------------

class BodyTooLarge(StarletteHTTPException):
    """A streamed request body went past its limit (raised from ``receive``, answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than this server accepts here ({_size(limit)}): send "
                              "less, or in several requests")


def _size(n: int) -> str:
    return f"{n / GiB:g} GiB" if n >= GiB else (f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes")


def _norm_host(host: str) -> str:
    """``Host`` value without port, lowercased, trailing dot dropped; IPv6 without brackets."""
    value = host.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        value = value[1:end] if end > 0 else value[1:]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, lowercased, the default port spelled out ("" when it has no host)."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        return ""
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return ""
    host = parts.hostname.lower().rstrip(".")
    return f"{parts.scheme.lower()}://{'[' + host + ']' if ':' in host else host}:{port}"


def _check_same_origin(headers: dict[str, str]) -> None:
    """Without authentication (``runlab studio``) a write must come from the studio's own pages or
    from a program (which sends no Origin): a browser's request from another site (another port of
    localhost too) is refused, by its ``Sec-Fetch-Site``, ``Origin`` or, lacking one, ``Referer``."""
    host = headers.get("host", "")
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise _Refused(403, f"cross-site request refused: the browser says it comes from a {site[:30]} page, "
                            "not from this studio's pages", "PermissionDeniedError")
    source = headers.get("origin")
    what = "Origin"
    if source is None:
        source, what = headers.get("referer"), "Referer"
    if source is None:
        return  # not a browser's cross-site request: browsers send Origin with every cross-site POST
    scheme = "https" if source.lower().startswith("https:") else "http"
    if source == "null" or _origin_of(source) != _origin_of(f"{scheme}://{host}"):
        raise _Refused(403, f"cross-site request refused: its {what} is {source[:100]!r}, not this studio "
                            f"({host[:100]}); writes come from the studio's own pages", "PermissionDeniedError")


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lowercase name; repeated ones joined (cookies with ``;``)."""
    out: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[name] = text if name not in out else out[name] + ("; " if name == "cookie" else ", ") + text
    return out


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def _is_exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def _wants_page(method: str, path: str, headers: dict[str, str]) -> bool:
    return method in ("GET", "HEAD") and not path.startswith("/api") and "text/html" in headers.get("accept", "")


class _Refused(Exception):
    def __init__(self, status: int, message: str, type_: str, *, clear_cookie: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.clear_cookie = status, message, type_, clear_cookie


class AuthMiddleware:
    """The checks of this module's docstring, as pure ASGI (nothing buffered)."""

    def __init__(self, app: ASGIApp, config: AuthConfig) -> None:
        self.app = app
        self.config = config
        self.allowed = {_norm_host(h) for h in config.allowed_hosts}
        self._secret: bytes | None = None

    async def secret(self) -> bytes:
        if self._secret is None:
            assert self.config.tokens is not None
            self._secret = await run_in_threadpool(self.config.tokens.session_secret)
        return self._secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", "/"))
        try:
            self._check_host(headers)
            self._check_path(path)
            principal = await self._authenticate(scope, method, path, headers)
            if principal is not None:
                scope.setdefault("state", {})["principal"] = principal
            limit = self.config.body_limit(path)
            length = headers.get("content-length")
            if length is not None:
                if not length.strip().isdigit():
                    raise _Refused(400, f"Content-Length {length!r} is not a number of bytes", "BadRequest")
                if int(length) > limit:
                    raise _Refused(413, BodyTooLarge(limit).detail, "RequestTooLarge")
        except _Refused as refusal:
            await self._refuse(scope, receive, send, refusal, method, path, headers)
            return
        await self._call_limited(scope, receive, send, self.config.body_limit(path))

    # -- steps ---------------------------------------------------------------------------------

    def _check_host(self, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        if "*" in self.allowed:
            return
        if not host:
            raise _Refused(400, "the request has no Host header: send the server's name in it", "BadHost")
        if _norm_host(host) not in self.allowed:
            shown = host[:100]
            raise _Refused(400, f"Host header {shown!r} is not one this server answers to; start it with "
                                f"--allowed-host {_norm_host(host)[:100]} if that is its name (it answers to: "
                                f"{', '.join(sorted(self.allowed))})", "BadHost")

    def _check_path(self, path: str) -> None:
        """Paths whose prefix grants something (exempt, a run token's, a larger body) must be what they
        seem: no ``..`` climbing out of the prefix. Other paths are left to their routes' own checks."""
        if not path.startswith((*RUN_TOKEN_PREFIXES, *EXEMPT_PREFIXES, *self.config.large_body_prefixes)):
            return
        segments = path.split("/")
        if any(s in (".", "..") for s in segments) or "\\" in path or "\x00" in path:
            raise _Refused(400, f"the path {path[:200]!r} has . or .. segments or a backslash: send the path "
                                "itself", "BadPath")

    async def _authenticate(self, scope: Scope, method: str, path: str,
                            headers: dict[str, str]) -> Principal | None:
        config = self.config
        if not config.enabled:
            if method not in SAFE_METHODS:
                _check_same_origin(headers)
            return LOCAL_ADMIN
        if _is_exempt(path):
            return None
        tokens = config.tokens
        assert tokens is not None
        by_cookie = False
        authorization = headers.get("authorization")
        cookies = _cookies(headers.get("cookie", ""))
        try:
            if authorization is not None:
                scheme, _, value = authorization.strip().partition(" ")
                if scheme.lower() != "bearer" or not value.strip():
                    raise _Refused(401, "the Authorization header must read `Bearer <token>` (a runlab token; "
                                        f"Basic and other schemes are not accepted): {_HOW}", "AuthenticationError")
                token = value.strip()
                cached = tokens.cached(token)  # memory vouches: no hashing, no database, on the event loop
                record = cached if cached is not None else await run_in_threadpool(tokens.verify, token)
            elif SESSION_COOKIE in cookies:
                by_cookie = True
                session = cookies[SESSION_COOKIE]
                secret = await self.secret()
                token_id = session_token_id(secret, session, tokens.clock())
                record = await run_in_threadpool(tokens.check_id, token_id)
                if record.role == "run":
                    raise AuthenticationError("a run's token cannot open a studio session: log in with your own")
            else:
                raise _Refused(401, f"this server needs a token and the request has none: {_HOW}",
                               "AuthenticationError")
        except AuthenticationError as exc:
            raise _Refused(401, exc.message, "AuthenticationError", clear_cookie=by_cookie) from None
        except StoreError as exc:
            raise _Refused(503, f"cannot check the token now: {exc.message}", "StoreUnavailableError") from None
        principal = _principal(record)
        self._authorize(principal, method, path)
        if by_cookie and method not in SAFE_METHODS:
            await self._check_csrf(headers, cookies[SESSION_COOKIE])
        return principal

    def _authorize(self, principal: Principal, method: str, path: str) -> None:
        if principal.role == "run":
            if not path.startswith(RUN_TOKEN_PREFIXES):
                raise _Refused(403, f"{principal.describe()} may only call the run API "
                                    f"({', '.join(p + '...' for p in RUN_TOKEN_PREFIXES)}), not {method} {path}",
                               "PermissionDeniedError")
            return  # the run API's routes check the run (require_run_write)
        if path.startswith(CLIENT_PROTOCOL_PREFIXES) and principal.can_read:
            return  # runlab's client protocol checks each call itself (server.api.remote.authorize): reads are POSTs
        if method in SAFE_METHODS or (method == "POST" and path in self.config.read_posts):
            if not principal.can_read:
                raise _Refused(403, f"{principal.describe()} cannot read {path}", "PermissionDeniedError")
            return
        if not principal.can_write:
            raise _Refused(403, f"{principal.describe()} is read-only: it cannot {method} {path}; writes need a "
                                "token of role writer or admin (runlab token create --name NAME --role writer)",
                           "PermissionDeniedError")

    async def _check_csrf(self, headers: dict[str, str], session: str) -> None:
        origin = headers.get("origin")
        if origin is not None and origin != "null":
            if _norm_host(urlsplit(origin).netloc) != _norm_host(headers.get("host", "")):
                raise _Refused(403, f"cross-site request refused: it comes from {origin[:100]}, not from this "
                                    "server's pages", "PermissionDeniedError")
        sent = headers.get(CSRF_HEADER, "")
        expected = csrf_for(await self.secret(), session)
        if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise _Refused(403, "cross-site request refused: a write from the studio's session must send the "
                                f"{CSRF_COOKIE} cookie's value in the X-CSRF-Token header (the studio's pages do; "
                                "scripts send Authorization: Bearer <token> instead)", "PermissionDeniedError")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: _Refused, method: str, path: str,
                      headers: dict[str, str]) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refusal.message[:120]})
            return
        response: Response
        if refusal.status == 401 and _wants_page(method, path, headers):
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + ("?" + query if query else "")
            response = RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
        else:
            response = JSONResponse(error_body(refusal.message, refusal.type), status_code=refusal.status)
            if refusal.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="runlab"'
        if refusal.clear_cookie:
            _clear_cookies(response, self.config)
        if refusal.status == 413:
            response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def _call_limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, limited_receive, watching_send)
        except BodyTooLarge as exc:
            if started:
                raise
            response = JSONResponse(error_body(str(exc.detail), "RequestTooLarge"), status_code=413,
                                    headers={"Connection": "close"})
            await response(scope, receive, send)


def _principal(record: TokenRecord) -> Principal:
    return Principal(name=record.name, role=record.role, run_id=record.run_id, token_id=record.token_id)


def _set_cookies(response: Response, config: AuthConfig, session: str, csrf: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, session, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=config.https)
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, path="/", httponly=False, samesite="strict",
                        secure=config.https)


def _clear_cookies(response: Response, config: AuthConfig) -> None:
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", httponly=http_only, samesite="strict", secure=config.https)


# -- install ----------------------------------------------------------------------------------------

def install_auth(app: FastAPI, config: AuthConfig) -> None:
    """Guard ``app`` (see the module's docstring): the middleware, ``/login`` and ``/logout``, and
    ``GET /api/whoami``. ``app.state.auth`` holds ``config``."""
    app.state.auth = config
    middleware = AuthMiddleware  # the instance is built by Starlette when the app starts
    app.add_middleware(middleware, config=config)

    def login_page(next_path: str, message: str = "", status_code: int = 200) -> HTMLResponse:
        from runlab.server.pages import _version, render

        note = f'<p class="error" role="alert" style="color: #b42318;">{_escape(message)}</p>' if message else ""
        return HTMLResponse(render("login.html", {"version": _version(), "next": _safe_next(next_path),
                                                  "message_html": note}), status_code=status_code)

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request) -> Response:
        next_path = _safe_next(request.query_params.get("next", "/"))
        if not config.enabled:
            return RedirectResponse(next_path, status_code=303)
        return login_page(next_path)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_BODY_MAX:
                return JSONResponse(error_body("the login form is too large", "RequestTooLarge"), status_code=413)
        wants_json = "application/json" in request.headers.get("content-type", "")
        fields = _login_fields(body, wants_json)
        next_path = _safe_next(fields.get("next", "/"))
        if not config.enabled or config.tokens is None:
            return RedirectResponse(next_path, status_code=303)
        headers = _headers(request.scope)
        origin = headers.get("origin")
        if origin is not None and origin != "null" and \
                _norm_host(urlsplit(origin).netloc) != _norm_host(headers.get("host", "")):
            return _login_refused(wants_json, login_page, next_path, 403,
                                  f"cross-site request refused: a login from {origin[:100]}")
        tokens = config.tokens
        try:
            record = await run_in_threadpool(tokens.verify, fields.get("token", "").strip())
        except AuthenticationError as exc:
            return _login_refused(wants_json, login_page, next_path, 401, exc.message)
        except StoreError as exc:
            return _login_refused(wants_json, login_page, next_path, 503, f"cannot check the token now: {exc.message}")
        if record.role == "run":
            return _login_refused(wants_json, login_page, next_path, 403,
                                  "a run's token cannot open the studio: log in with a token of your own")
        now = tokens.clock()
        expires = now + config.session_max_age_s
        if record.expires_at is not None:
            expires = min(expires, record.expires_at)
        secret = await run_in_threadpool(tokens.session_secret)
        session = make_session(secret, record.token_id, expires)
        response: Response
        if wants_json:
            response = JSONResponse({"name": record.name, "role": record.role, "expires_at": expires})
        else:
            response = RedirectResponse(next_path, status_code=303)
        _set_cookies(response, config, session, csrf_for(secret, session), max(1, int(expires - now)))
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        response: Response
        if "text/html" in request.headers.get("accept", ""):
            response = RedirectResponse("/login" if config.enabled else "/", status_code=303)
        else:
            response = JSONResponse({"logged_out": True})
        _clear_cookies(response, config)
        return response

    @app.get("/api/whoami", tags=["workspace"])
    def whoami(request: Request) -> dict[str, Any]:
        """Who the request's token is: name, role, and for a run's token its run."""
        principal = current_principal(request)
        return {"name": principal.name, "role": principal.role, "run_id": principal.run_id,
                "token_id": principal.token_id, "auth": config.enabled}


def _login_fields(body: bytes, is_json: bool) -> dict[str, str]:
    if is_json:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items() if v}


def _login_refused(wants_json: bool, login_page: Callable[[str, str, int], HTMLResponse], next_path: str,
                   status: int, message: str) -> Response:
    if wants_json:
        type_ = {401: "AuthenticationError", 403: "PermissionDeniedError"}.get(status, "StoreUnavailableError")
        return JSONResponse(error_body(message, type_), status_code=status)
    return login_page(next_path, message, status)


def _safe_next(value: str) -> str:
    """A local path to go to after logging in (never another site: //evil, /\\evil, http://...)."""
    if not value.startswith("/") or value.startswith(("//", "/\\")) or any(c in value for c in "\r\n\\"):
        return "/"
    return value


def _escape(text: str) -> str:
    import html

    return html.escape(text)

