"""Security of the server mode, attacked over real HTTP: tokens (none, wrong, cut short, foreign,
expired, revoked), roles (read-only, a run's own token), the Host check, body limits, the studio's
cookie session and its CSRF token, the bind check, ``runlab token`` and how tokens are stored.

Servers are real uvicorn on 127.0.0.1 (studio_fixtures.LiveServer) spoken to with httpx. Time is never
waited on: expiry and the revocation cache are driven by the token store's injectable clocks.
"""

from __future__ import annotations

import re
import socket
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi import APIRouter, Request
from studio_fixtures import LiveServer, add_run

from runlab.core.errors import AuthenticationError, PermissionDeniedError, UserError
from runlab.core.status import RunStatus
from runlab.server.app import create_app
from runlab.server.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AuthConfig,
    Principal,
    check_bind,
    current_principal,
    require_admin,
    require_run_write,
    require_write,
)
from runlab.store.hosted import HostedWorkspace
from runlab.store.sql.tokens import TokenStore, issue_run_token, revoke_run_tokens

LIMIT = 1024  # bytes: the test servers' body limit (uploads under /api/remote/: 4 KiB)
LARGE = 4096


def _test_routes() -> APIRouter:
    """Tiny routes of the kinds the real API has: a write anywhere, a run's write, a streamed upload."""
    router = APIRouter()

    @router.post("/api/authtest/echo")
    @router.put("/api/authtest/echo")
    @router.delete("/api/authtest/echo")
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"bytes": len(body), "who": current_principal(request).name}

    @router.post("/api/store/authtest/runs/{run_id}/metrics")
    def write_run(run_id: str, request: Request) -> dict[str, Any]:
        principal = require_run_write(request, run_id)
        return {"ok": True, "run_id": run_id, "by": principal.name}

    @router.post("/api/remote/authtest/upload")
    async def upload(request: Request) -> dict[str, Any]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        require_write(request)
        return {"bytes": size}

    @router.post("/api/authtest/admin")
    def admin_only(request: Request) -> dict[str, Any]:
        require_admin(request)
        return {"ok": True}

    return router


def _make_app(folder: Any, **config: Any) -> Any:
    auth = AuthConfig(**{"enabled": True, "allowed_hosts": ["127.0.0.1", "localhost"], "max_body_bytes": LIMIT,
                         "large_body_bytes": LARGE, **config}) if config.get("enabled", True) else None
    app = create_app(folder, poll_interval_s=0.1, stream_max_s=5, auth=auth)
    routes = _test_routes().routes
    app.router.routes[:0] = routes  # before any catch-all of the real API
    return app


class Server:
    """A live server over a hosted workspace (SQLite store), with its token store."""

    def __init__(self, tmp_path: Path, url: str | None = None, **config: Any) -> None:
        self.store_url = url or f"sqlite:///{tmp_path / 'store.db'}"
        self.folder = HostedWorkspace(self.store_url, tmp_path / "artifacts", name="team")
        # recheck_s=0: the server reads the token's row on every request, so a revocation shows at once
        self.tokens = TokenStore(self.folder.store.engine, recheck_s=0)
        if config.get("enabled", True):
            config.setdefault("tokens", self.tokens)
        self.app = _make_app(self.folder, **config)
        self.live = LiveServer(self.app).start()
        self.url = self.live.url

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, follow_redirects=False, **kwargs)

    def token(self, role: str = "writer", name: str | None = None, **kwargs: Any) -> str:
        plaintext, _record = self.tokens.create(name or f"{role}-{len(self.tokens.list(True))}", role, **kwargs)
        return plaintext

    def stop(self) -> None:
        self.live.stop()
        self.folder.store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    add_run(s.folder, "mnist", "run_a", status=RunStatus.RUNNING)
    add_run(s.folder, "mnist", "run_b", status=RunStatus.RUNNING)
    yield s
    s.stop()


def _error(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


# -- no token, bad tokens ---------------------------------------------------------------------------

def test_no_token_is_401_and_says_how_to_get_one(server: Server) -> None:
    with server.client() as http:
        r = http.get("/api/runs")
        assert r.status_code == 401
        assert "runlab token create" in _error(r) and "Authorization: Bearer" in _error(r)
        assert r.json()["error"]["type"] == "AuthenticationError"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert http.post("/api/authtest/echo", content=b"x").status_code == 401
        assert http.get("/api/whoami").status_code == 401
        # a browser asking for a page goes to the login form, and back afterwards
        page = http.get("/runs?experiment=mnist", headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fruns%3Fexperiment%3Dmnist"
        # the probes and the login page need no token
        assert http.get("/healthz").status_code == 200
        assert http.get("/login").status_code == 200 and "runlab token create" in http.get("/login").text
        assert http.get("/static/studio.css").status_code == 200


@pytest.mark.parametrize("mangle, says", [
    (lambda t: t[:-1], "not valid"),                                 # the last character lost: a wrong secret
    (lambda t: t[:20], "cut short"),                                 # truncated
    (lambda t: t + "x" * 200, "cut short"),                          # extra characters
    (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), "not valid"),  # same length, wrong secret
    (lambda t: "rl_000000000000_" + t.split("_", 2)[2], "no token has id 000000000000"),  # unknown id
    (lambda t: "ghp_" + t[3:], "does not start with rl_"),            # another service's token
    (lambda t: "eyJhbGciOiJIUzI1NiJ9.e30.x", "does not start with rl_"),  # a JWT
])
def test_wrong_truncated_and_foreign_tokens_are_401(server: Server, mangle: Any, says: str) -> None:
    good = server.token("admin")
    with server.client(mangle(good)) as http:
        r = http.get("/api/runs")
    assert r.status_code == 401, r.text
    assert says in _error(r) and "runlab token create" in _error(r)
    with server.client(good) as http:
        assert http.get("/api/runs").status_code == 200


@pytest.mark.parametrize("header", ["Basic YWRhOnNlY3JldA==", "Bearer", "Token rl_x", "rl_abc"])
def test_other_authorization_schemes_are_401(server: Server, header: str) -> None:
    with server.client() as http:
        r = http.get("/api/runs", headers={"Authorization": header})
    assert r.status_code == 401
    assert "Bearer <token>" in _error(r)


def test_an_expired_token_is_401(server: Server) -> None:
    token = server.token("writer", name="ci", expires_in_s=3600)
    with server.client(token) as http:
        assert http.get("/api/runs").status_code == 200
        with server.tokens.engine.begin() as conn:  # its hour is over
            conn.execute(sa.text("UPDATE tokens SET expires_at = 1000 WHERE name = 'ci'"))
        r = http.get("/api/runs")
    assert r.status_code == 401
    assert "expired" in _error(r) and "'ci'" in _error(r) and "runlab token create" in _error(r)


def test_expiry_is_checked_from_memory_too(tmp_path: Path) -> None:
    """A cached token is refused the moment its expiry passes (no wait for the re-check)."""
    now = [1_000_000.0]
    store = HostedWorkspace(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "a").store
    tokens = TokenStore(store.engine, recheck_s=3600, clock=lambda: now[0], monotonic=lambda: now[0])
    token, record = tokens.create("short", "reader", expires_in_s=60)
    assert record.expires_at == 1_000_060.0
    assert tokens.verify(token).name == "short"
    assert tokens.cached(token) is not None
    now[0] += 61
    assert tokens.cached(token) is None
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.verify(token)


def test_a_revoked_token_stops_working(server: Server) -> None:
    token = server.token("writer", name="leaked")
    other = server.token("writer", name="kept")
    with server.client(token) as http, server.client(other) as http2:
        assert http.get("/api/runs").status_code == 200
        assert server.tokens.revoke("leaked") == 1
        r = http.get("/api/runs")
        assert r.status_code == 401 and "revoked" in _error(r) and "'leaked'" in _error(r)
        assert http2.get("/api/runs").status_code == 200  # the others stay
    assert server.tokens.revoke("leaked") == 0  # already revoked


def test_revocation_reaches_other_processes_within_the_recheck_interval(tmp_path: Path) -> None:
    """Two token stores on one database are two server processes: the revoking one refuses at once,
    the other from memory until its re-check (recheck_s of its own clock), then refuses too."""
    tick = [0.0]
    store = HostedWorkspace(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "a").store
    process_a = TokenStore(store.engine, recheck_s=5, monotonic=lambda: tick[0])
    process_b = TokenStore(store.engine, recheck_s=5, monotonic=lambda: tick[0])
    token, record = process_a.create("ada", "writer")
    assert process_a.verify(token).token_id == process_b.verify(token).token_id == record.token_id
    assert process_a.revoke(record.token_id) == 1
    with pytest.raises(AuthenticationError, match="revoked"):
        process_a.verify(token)
    tick[0] = 4.9
    assert process_b.verify(token).token_id == record.token_id  # still trusted from memory: < 5 s
    tick[0] = 5.0
    with pytest.raises(AuthenticationError, match="revoked"):
        process_b.verify(token)
    assert process_b.cached(token) is None


# -- roles -------------------------------------------------------------------------------------------

def test_a_read_only_token_reads_but_cannot_write(server: Server) -> None:
    token = server.token("reader", name="viewer")
    with server.client(token) as http:
        assert http.get("/api/runs").status_code == 200
        assert http.get("/api/whoami").json()["role"] == "reader"
        for method in ("POST", "PUT", "DELETE"):
            r = http.request(method, "/api/authtest/echo", content=b"{}")
            assert r.status_code == 403, method
            assert "read-only" in _error(r) and "--role writer" in _error(r)
        assert http.post("/api/store/authtest/runs/run_a/metrics").status_code == 403
        assert http.post("/api/remote/authtest/upload", content=b"x").status_code == 403


def test_writers_write_and_only_admins_pass_require_admin(server: Server) -> None:
    writer, admin = server.token("writer"), server.token("admin")
    with server.client(writer) as http:
        assert http.post("/api/authtest/echo", content=b"abc").json() == {"bytes": 3, "who": "writer-0"}
        assert http.post("/api/store/authtest/runs/run_b/metrics").json()["ok"] is True
        r = http.post("/api/authtest/admin")
        assert r.status_code == 403 and "role admin" in _error(r)
    with server.client(admin) as http:
        assert http.post("/api/authtest/admin").json() == {"ok": True}


def test_a_run_token_writes_its_run_only_and_reads_nothing_else(server: Server) -> None:
    token = issue_run_token(server.tokens.engine, "run_a", ttl_s=3600)
    with server.client(token) as http:
        assert http.post("/api/store/authtest/runs/run_a/metrics").json() == {"ok": True, "run_id": "run_a",
                                                                              "by": "run:run_a"}
        r = http.post("/api/store/authtest/runs/run_b/metrics")
        assert r.status_code == 403 and "cannot write run run_b" in _error(r) and "own run run_a" in _error(r)
        assert r.json()["error"]["type"] == "PermissionDeniedError"
        for method, path in (("GET", "/api/runs"), ("GET", "/api/runs/run_a"), ("GET", "/api/experiments"),
                             ("POST", "/api/authtest/echo"), ("GET", "/api/whoami"), ("GET", "/runs")):
            r = http.request(method, path)
            assert r.status_code == 403, (method, path)
            assert "may only call the run API" in _error(r)
        # it cannot open a studio session either
        login = http.post("/login", data={"token": token})
        assert login.status_code == 403 and SESSION_COOKIE not in login.headers.get("set-cookie", "")
    assert revoke_run_tokens(server.tokens.engine, "run_a") == 1
    with server.client(token) as http:
        assert http.post("/api/store/authtest/runs/run_a/metrics").status_code == 401


def test_principal_rules() -> None:
    run = Principal("run:a", "run", run_id="a")
    assert run.may_write_run("a") and not run.may_write_run("b") and not run.can_read and not run.can_write
    assert run.may_read_run("a") and not run.may_read_run("b")
    reader = Principal("v", "reader")
    assert reader.can_read and not reader.can_write and not reader.may_write_run("a") and reader.may_read_run("a")
    writer = Principal("w", "writer")
    assert writer.may_write_run("anything") and not writer.is_admin
    assert Principal("x", "admin").is_admin
    assert not Principal("r", "run", run_id=None).may_write_run("None")


# -- Host header, paths, body sizes -----------------------------------------------------------------

@pytest.mark.parametrize("enabled", [False, True])
def test_a_foreign_host_header_is_refused_even_without_auth(tmp_path: Path, enabled: bool) -> None:
    s = Server(tmp_path, enabled=enabled)
    try:
        token = s.token("admin") if enabled else None
        with s.client(token) as http:
            ok = http.get("/api/runs")
            assert ok.status_code == 200
            for host in ("evil.example", "evil.example:80", f"attacker.test:{s.live.port}", "127.0.0.1.evil.example",
                         "localhost.", ""):
                r = http.get("/api/runs", headers={"Host": host})
                if host == "localhost.":
                    assert r.status_code == 200  # the same name with the root's dot
                    continue
                assert r.status_code == 400, host
                assert r.json()["error"]["type"] == "BadHost"
                if host:
                    assert "--allowed-host" in _error(r) and "not one this server answers to" in _error(r)
            assert http.get("/api/runs", headers={"Host": f"localhost:{s.live.port}"}).status_code == 200
    finally:
        s.stop()


def test_the_embedded_studio_answers_to_loopback_only(ws: Any) -> None:
    live = LiveServer(create_app(ws.folder, poll_interval_s=0.1, stream_max_s=5)).start()
    try:
        with httpx.Client(base_url=live.url, timeout=10) as http:
            assert http.get("/api/whoami").json() == {"name": "local", "role": "admin", "run_id": None,
                                                      "token_id": None, "auth": False}
            assert http.get("/api/runs", headers={"Host": "rebound.example"}).status_code == 400
            assert http.get("/api/runs", headers={"Host": "[::1]:8000"}).status_code == 200
    finally:
        live.stop()


def _raw(server: Server, request_head: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request written byte for byte (httpx would normalize the path or refuse the header)."""
    with socket.create_connection(("127.0.0.1", server.live.port), timeout=10) as sock:
        sock.sendall(request_head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_dot_segments_in_paths_are_refused(server: Server) -> None:
    token = issue_run_token(server.tokens.engine, "run_a", ttl_s=None)
    # a run's token may call /api/store/...: not through it to the rest of the API
    for path in ("/api/store/../runs", "/api/store/%2e%2e/runs", "/api/store/./../runs", "/static/../api/runs",
                 "/api/store/..%2fruns", "/api/store/%2E%2E/runs"):
        status, data = _raw(server, f"GET {path} HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer {token}\n"
                                    "Connection: close\n")
        assert status == 400 and b"segments" in data, path


def test_an_oversized_body_is_413_by_content_length_and_by_counting(server: Server) -> None:
    token = server.token("writer")
    with server.client(token) as http:
        assert http.post("/api/authtest/echo", content=b"x" * LIMIT).json()["bytes"] == LIMIT
        r = http.post("/api/authtest/echo", content=b"x" * (LIMIT + 1))  # Content-Length
        assert r.status_code == 413 and "larger than this server accepts" in _error(r)

        def chunks(total: int, size: int = 100) -> Iterator[bytes]:
            for start in range(0, total, size):
                yield b"y" * min(size, total - start)

        assert http.post("/api/authtest/echo", content=chunks(LIMIT)).json()["bytes"] == LIMIT
        r = http.post("/api/authtest/echo", content=chunks(LIMIT * 5))  # chunked: no Content-Length
        assert r.status_code == 413 and "larger than this server accepts" in _error(r)
        # the upload routes take more, streamed, and still have a limit
        assert http.post("/api/remote/authtest/upload", content=chunks(LARGE)).json() == {"bytes": LARGE}
        assert http.post("/api/remote/authtest/upload", content=chunks(LARGE + 1)).status_code == 413
        assert http.post("/api/remote/authtest/upload", content=b"z" * (LARGE + 1)).status_code == 413
    status, _ = _raw(server, f"POST /api/authtest/echo HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer {token}\n"
                             "Content-Length: nope\nConnection: close\n", b"x")
    assert status in (400, 413)  # uvicorn or the middleware: never let through
    status, data = _raw(server, f"POST /api/authtest/echo HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer {token}\n"
                                f"Content-Length: {10**12}\nConnection: close\n", b"x")
    assert status == 413 and b"larger than this server accepts" in data


# -- the studio's session --------------------------------------------------------------------------

def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def test_studio_login_sets_a_strict_httponly_session_and_csrf_guards_writes(server: Server) -> None:
    token = server.token("writer", name="ada")
    with server.client() as http:
        r = http.post("/login", data={"token": token, "next": "/runs"})
        assert r.status_code == 303 and r.headers["location"] == "/runs"
        cookies = _set_cookies(r)
        session, csrf = cookies[SESSION_COOKIE], cookies[CSRF_COOKIE]
        assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
        assert "Path=/" in session and "Secure" not in session
        assert "HttpOnly" not in csrf and "SameSite=strict" in csrf.replace("Strict", "strict")
        assert token not in session and token.split("_", 2)[2] not in session  # the token itself stays out
        csrf_value = http.cookies[CSRF_COOKIE]

        assert http.get("/api/whoami").json()["name"] == "ada"  # the cookie authenticates
        page = http.get("/runs", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "<html" in page.text

        # a cross-site form or fetch carries the cookie but cannot read the CSRF cookie
        r = http.post("/api/authtest/echo", content=b"{}")
        assert r.status_code == 403 and "cross-site request refused" in _error(r)
        r = http.post("/api/authtest/echo", content=b"{}", headers={"X-CSRF-Token": "guess"})
        assert r.status_code == 403
        r = http.post("/api/authtest/echo", content=b"{}", headers={"X-CSRF-Token": csrf_value,
                                                                    "Origin": "http://evil.example"})
        assert r.status_code == 403 and "evil.example" in _error(r)
        r = http.post("/api/authtest/echo", content=b"{}", headers={"X-CSRF-Token": csrf_value,
                                                                    "Origin": server.url})
        assert r.status_code == 200 and r.json()["who"] == "ada"

        # logging out ends it
        out = http.post("/logout")
        assert out.status_code == 200 and 'runlab_session=""' in out.headers.get("set-cookie", "").replace(
            "runlab_session=;", 'runlab_session="";')
        assert http.get("/api/whoami").status_code == 401


def test_a_revoked_token_ends_its_sessions_and_a_forged_cookie_is_refused(server: Server) -> None:
    token = server.token("writer", name="ada")
    with server.client() as http:
        assert http.post("/login", data={"token": token}).status_code == 303
        assert http.get("/api/whoami").status_code == 200
        good = http.cookies[SESSION_COOKIE]
        forged = re.sub(r"\.(\d+)\.", lambda m: f".{int(m.group(1)) + 10**6}.", good, count=1)  # a longer life
        for cookie in (forged, good[:-3] + "AAA", "s1.000000000000.9999999999.x.y", "garbage"):
            with server.client(cookies={SESSION_COOKIE: cookie}) as other:
                r = other.get("/api/whoami")
            assert r.status_code == 401 and "log in again" in _error(r), cookie
            assert "runlab_session=" in r.headers.get("set-cookie", "")  # cleared
        server.tokens.revoke("ada")
        r = http.get("/api/whoami")
        assert r.status_code == 401 and "revoked" in _error(r)
        # a page then goes to the login form, and the stale cookie is cleared
        page = http.get("/runs", headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_login_refuses_wrong_tokens_and_foreign_next_targets(server: Server) -> None:
    token = server.token("reader")
    with server.client() as http:
        bad = http.post("/login", data={"token": token[:-2] + "zz"})
        assert bad.status_code == 401 and "not valid" in bad.text and SESSION_COOKIE not in bad.headers.get(
            "set-cookie", "")
        for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
            r = http.post("/login", data={"token": token, "next": target})
            assert r.status_code == 303 and r.headers["location"] == "/", target
        r = http.post("/login", json={"token": token})
        assert r.status_code == 200 and r.json()["role"] == "reader"
        r = http.post("/login", data={"token": token}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403


def test_session_cookies_are_secure_over_https(tmp_path: Path) -> None:
    s = Server(tmp_path, https=True)
    try:
        token = s.token("admin")
        with s.client() as http:
            cookies = _set_cookies(http.post("/login", data={"token": token}))
        assert "Secure" in cookies[SESSION_COOKIE] and "Secure" in cookies[CSRF_COOKIE]
        assert "HttpOnly" in cookies[SESSION_COOKIE]
    finally:
        s.stop()


def test_the_studio_scripts_send_the_csrf_header() -> None:
    from runlab.server.pages import STATIC

    script = (STATIC / "studio.js").read_text()
    assert '"X-CSRF-Token"' in script and "runlab_csrf=" in script


# -- binding ------------------------------------------------------------------------------------------

def test_binding_beyond_loopback_without_auth_is_refused() -> None:
    with pytest.raises(UserError) as info:
        check_bind("0.0.0.0", False)
    message = info.value.message
    assert "runlab token create --store" in message and "--role admin" in message and "--no-auth" in message
    for host in ("::", "192.168.1.20", "my-host.example"):
        with pytest.raises(UserError):
            check_bind(host, False)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, False)
    check_bind("0.0.0.0", True)


def test_route_helpers_raise_the_right_errors() -> None:
    class Fake:
        def __init__(self, principal: Principal | None) -> None:
            self.scope = {"state": {"principal": principal}} if principal else {}

    with pytest.raises(AuthenticationError):
        current_principal(Fake(None))  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedError):
        require_write(Fake(Principal("v", "reader")))  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedError):
        require_run_write(Fake(Principal("r", "run", run_id="a")), "b")  # type: ignore[arg-type]
    assert require_run_write(Fake(Principal("r", "run", run_id="a")), "a").name == "r"  # type: ignore[arg-type]


# -- the command line, and what is stored -------------------------------------------------------------

def test_token_cli_creates_lists_and_revokes_without_showing_secrets(tmp_path: Path) -> None:
    from runlab.cli.main import cli

    url = f"sqlite:///{tmp_path / 'store.db'}"
    runner = CliRunner()
    created = runner.invoke(cli, ["token", "create", "--store", url, "--name", "ada", "--read-only",
                                  "--expires", "30d"])
    assert created.exit_code == 0, created.output
    token = re.search(r"rl_[0-9a-f]{12}_[A-Za-z0-9_-]+", created.output)
    assert token is not None
    plaintext = token.group(0)
    assert "export RUNLAB_TOKEN=" + plaintext in created.output and "only time it is shown" in created.output
    token_id = plaintext.split("_")[1]

    again = runner.invoke(cli, ["token", "create", "--name", "ada"], env={"RUNLAB_STORE_URL": url})
    assert again.exit_code == 1 and "exists" in again.output
    assert runner.invoke(cli, ["token", "create", "--store", url, "--name", "ci", "--role", "admin"]).exit_code == 0

    listed = runner.invoke(cli, ["token", "list"], env={"RUNLAB_STORE_URL": url})
    assert listed.exit_code == 0, listed.output
    assert token_id in listed.output and "ada" in listed.output and "reader" in listed.output and "ci" in listed.output
    assert "rl_" not in listed.output and plaintext.split("_", 2)[2] not in listed.output

    revoked = runner.invoke(cli, ["token", "revoke", "--store", url, "ada"])
    assert revoked.exit_code == 0 and "revoked 1 token" in revoked.output
    assert "ada" not in runner.invoke(cli, ["token", "list", "--store", url]).output
    assert "ada" in runner.invoke(cli, ["token", "list", "--store", url, "--all"]).output
    gone = runner.invoke(cli, ["token", "revoke", "--store", url, "ada"])
    assert gone.exit_code == 1 and "no active token" in gone.output

    bad = runner.invoke(cli, ["token", "create", "--store", url, "--name", "x", "--expires", "soon"])
    assert bad.exit_code == 1 and "30d" in bad.output
    nostore = runner.invoke(cli, ["token", "list"], env={"RUNLAB_STORE_URL": ""})
    assert nostore.exit_code == 1 and "--store URL" in nostore.output
    for sub in ("create", "list", "revoke"):
        assert "--store URL" in runner.invoke(cli, ["token", sub, "--help"]).output


def test_tokens_are_stored_hashed_only(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = HostedWorkspace(f"sqlite:///{path}", tmp_path / "a").store
    tokens = TokenStore(store.engine)
    plaintexts = [tokens.create(f"user{i}", role)[0] for i, role in enumerate(("admin", "writer", "reader"))]
    plaintexts.append(issue_run_token(store.engine, "run_x", ttl_s=60))
    for token in plaintexts:
        assert tokens.verify(token).token_id == token.split("_")[1]
    tokens.session_secret()
    store.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT * FROM tokens").fetchall()
        hashes = conn.execute("SELECT secret_hash FROM tokens").fetchall()
        everything = "\n".join(repr(row) for table in ("tokens", "workspace_meta")
                               for row in conn.execute(f"SELECT * FROM {table}"))  # noqa: S608
    assert len(rows) == 4
    assert all(h.startswith("pbkdf2_sha256$100000$") for (h,) in hashes)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*"))
    for token in plaintexts:
        secret = token.split("_", 2)[2]
        assert token not in everything and secret not in everything
        assert secret.encode() not in raw


def test_token_names_roles_and_runs_are_checked(tmp_path: Path) -> None:
    tokens = TokenStore(HostedWorkspace(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "a").store.engine)
    for name, role, run_id, says in (("", "writer", None, "not valid"), ("a b", "writer", None, "not valid"),
                                     ("x", "root", None, "not one of"), ("x", "run", None, "run's id"),
                                     ("x", "writer", "r1", "run's id")):
        with pytest.raises(UserError, match=says):
            tokens.create(name, role, run_id=run_id)
    with pytest.raises(UserError):
        tokens.create("x", "writer", expires_in_s=0)
    # a run may hold several tokens; a person's name one active token
    issue_run_token(tokens.engine, "r1", ttl_s=10)
    issue_run_token(tokens.engine, "r1", ttl_s=10)
    assert tokens.revoke_run_tokens("r1") == 2


def test_tokens_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    from pg_support import drop_database, fresh_database

    url = fresh_database(postgres_url)
    s: Server | None = None
    try:
        s = Server(tmp_path, url=url)
        add_run(s.folder, "mnist", "run_pg", status=RunStatus.RUNNING)
        writer = s.token("writer", name="ada")
        run_token = issue_run_token(s.tokens.engine, "run_pg", ttl_s=600)
        with s.client(writer) as http:
            assert http.get("/api/runs").status_code == 200
        with s.client(run_token) as http:
            assert http.post("/api/store/authtest/runs/run_pg/metrics").status_code == 200
            assert http.post("/api/store/authtest/runs/other/metrics").status_code == 403
        with s.client() as http:
            assert http.post("/login", data={"token": writer}).status_code == 303
            assert http.get("/api/whoami").json()["name"] == "ada"
        # a second "process" on the same store shares the session key and sees the revocation
        other = TokenStore(s.folder.store.engine, recheck_s=0)
        assert other.session_secret() == s.tokens.session_secret()
        assert other.revoke("ada") == 1
        with s.client(writer) as http:
            assert http.get("/api/runs").status_code == 401
        with s.tokens.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT secret_hash FROM tokens")).scalars().all()
        assert all(writer not in h and h.startswith("pbkdf2_sha256$") for h in stored)
    finally:
        if s is not None:
            s.stop()
        drop_database(postgres_url, url)


def test_the_studio_shows_who_is_logged_in_and_logs_out(server: Server, browser: Any) -> None:
    """Chromium: log in with a token, the top bar names the token and its role, Log out ends the session."""
    token = server.token("writer", name="grace")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(server.live.url + "/runs")
        assert page.url.startswith(server.live.url + "/login")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_selector("form.session .who")
        assert page.inner_text("form.session .who") == "grace (writer)"
        page.click("#logout")
        page.wait_for_url(server.live.url + "/login*")
        assert not [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
        page.goto(server.live.url + "/runs")
        assert page.url.startswith(server.live.url + "/login")  # logged out: the pages ask for a token again
    finally:
        context.close()


def test_the_embedded_studio_shows_no_session(live_server: LiveServer, page: Any) -> None:
    page.goto(live_server.url + "/runs")
    page.wait_for_selector("#main")
    page.wait_for_load_state("networkidle")
    assert page.locator("form.session").count() == 0
