"""The server's access tokens: created, listed, revoked and verified against the ``tokens`` table.

A token reads ``rl_<token_id>_<secret>``: ``token_id`` is public (12 hex digits: ``runlab token
list`` shows it, ``revoke`` takes it), ``secret`` is ``secrets.token_urlsafe(32)``. The table keeps
only a PBKDF2-HMAC-SHA256 hash of the whole token (a salt of its own, :data:`PBKDF2_ITERATIONS`
rounds); the plaintext is returned once, by :meth:`TokenStore.create`.

Verifying a hash is slow by design (tens of milliseconds), so :meth:`TokenStore.verify` keeps each
verified token in memory, keyed by the sha256 of the token, and reads the token's row again at most
every ``recheck_s`` seconds (5 by default) to see a revocation: **a revoked token stops working
within ``recheck_s`` seconds in every server process** (at once in the process that revoked it).
Expiry is checked on every call, from the cached ``expires_at``. ``last_used_at`` is updated on those
re-reads, so it is exact to ``recheck_s``.

Roles: ``admin`` (everything, tokens included), ``writer`` (read and write the workspace),
``reader`` (read only), ``run`` (a submitted run's own token: it writes that run only; see
:func:`issue_run_token`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from runlab.core.errors import AuthenticationError, NotFoundError, StoreError, UserError
from runlab.store.sql import schema as t

ROLES = ("admin", "writer", "reader", "run")
PREFIX = "rl_"
PBKDF2_ITERATIONS = 100_000
RECHECK_S = 5.0
SESSION_SECRET_META = "server.session_secret"
_HOW = "create one with `runlab token create --name NAME` (an admin's job) and send it as `Authorization: Bearer <token>`"
_TOKEN = re.compile(r"rl_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,399}")
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class TokenRecord:
    """One token as the table holds it (never its secret)."""

    token_id: str
    name: str
    role: str
    run_id: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def is_active(self, now: float) -> bool:
        return self.revoked_at is None and not self.is_expired(now)


def hash_token(token: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (base64url, no padding) of ``token``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(digest)}"


def check_hash(token: str, stored: str) -> bool:
    """Whether ``token`` is the one ``stored`` (a :func:`hash_token` value) was made from."""
    try:
        scheme, rounds, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = _unb64(digest)
        actual = hashlib.pbkdf2_hmac("sha256", token.encode(), _unb64(salt), int(rounds))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


MAX_DURATION_S = 36_525 * 86400  # 100 years: longer is `never` (and past what a date can show)


def parse_duration(text: str) -> float | None:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` as seconds; ``never`` (or ``none``, ``0``) as None."""
    value = text.strip().lower()
    if value in ("never", "none", "0"):
        return None
    if not value:  # `--expires "$TTL"` with TTL unset must not make a token that never expires
        raise UserError("--expires '': give a duration, like 30d, 12h, 90m, 2w, or never")
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
    if not match:
        raise UserError(f"--expires {text!r} is not a duration: give a number and a unit, like 30d, 12h, 90m, 2w, "
                        "or never")
    number = float(match.group(1))
    if number <= 0:
        raise UserError(f"--expires {text!r}: a token must live longer than 0 (or give never)")
    seconds = number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match.group(2)]
    if seconds > MAX_DURATION_S:
        raise UserError(f"--expires {text!r} is more than 100 years ({MAX_DURATION_S // 86400:,.0f}d): give a shorter "
                        "duration, or never")
    return seconds


def token_id_of(token: str) -> str | None:
    """The public id inside a token of runlab's format, else None."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


class TokenStore:
    """Tokens in the ``tokens`` table of a SQL store (SQLite or PostgreSQL): pass ``SqlStore(url).engine``,
    whose schema is migrated when the store opens.

    ``recheck_s``: how long a verified token is trusted from memory before its row is read again
    (revocations take effect within it); ``clock``: unix time (expiry, timestamps); ``monotonic``:
    the cache's clock. Thread-safe: one instance serves every request of a server process.
    """

    def __init__(self, engine: Engine, *, recheck_s: float = RECHECK_S, iterations: int = PBKDF2_ITERATIONS,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.recheck_s = recheck_s
        self.iterations = iterations
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        # sha256(token) or "id:<token_id>" -> (record, monotonic time its row was last read)
        self._cache: OrderedDict[str, tuple[TokenRecord, float]] = OrderedDict()
        self._rejected: OrderedDict[str, float] = OrderedDict()  # sha256 of wrong tokens -> when
        self._secret: bytes | None = None

    # -- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _conn(self, doing: str, *, write: bool = False, busy_ms: int = 5000) -> Iterator[Connection]:
        """A connection in a transaction (SQLite: IMMEDIATE for writes, waiting ``busy_ms`` for the lock);
        SQLAlchemy's errors become the store's (StoreBusyError, StoreUnavailableError...)."""
        try:
            with self.engine.connect() as conn:
                if write and self.engine.url.get_backend_name() == "sqlite":
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE", sqlite_busy_ms=busy_ms)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            from runlab.store.sql.store import _translate

            raise _translate(exc, doing) from exc

    @staticmethod
    def _record(row: sa.Row[tuple[object, ...]] | sa.RowMapping) -> TokenRecord:
        m = row._mapping if isinstance(row, sa.Row) else row
        return TokenRecord(token_id=str(m["token_id"]), name=str(m["name"]), role=str(m["role"]),
                           run_id=m["run_id"], created_at=float(m["created_at"]), expires_at=m["expires_at"],
                           revoked_at=m["revoked_at"], last_used_at=m["last_used_at"])

    def _row(self, conn: Connection, token_id: str) -> sa.RowMapping | None:
        return conn.execute(sa.select(t.tokens).where(t.tokens.c.token_id == token_id)).mappings().first()

    def _remember(self, key: str, record: TokenRecord) -> None:
        with self._lock:
            self._cache[key] = (record, self.monotonic())
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_MAX:
                self._cache.popitem(last=False)

    def _forget(self, token_ids: set[str]) -> None:
        with self._lock:
            for key in [k for k, (rec, _) in self._cache.items() if rec.token_id in token_ids]:
                del self._cache[key]

    # -- create, list, revoke ------------------------------------------------------------------

    def create(self, name: str, role: str, *, expires_in_s: float | None = None,
               run_id: str | None = None) -> tuple[str, TokenRecord]:
        """A new token: ``(plaintext, record)``. The plaintext is not kept anywhere: show it once.

        ``name`` must be unused by an active token (run tokens excepted: a run may get several);
        ``role`` one of :data:`ROLES`; ``run_id`` is required for (and only for) role ``run``.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UserError(f"token name {name!r} is not valid: use letters, digits and _ . @ : + - (up to 400), "
                            "starting with a letter or digit, e.g. --name ada or --name ci-nightly")
        if role not in ROLES:
            raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if (role == "run") != (run_id is not None):
            raise UserError("a token of role 'run' needs the run's id (run_id), and only such a token has one")
        if expires_in_s is not None and not expires_in_s > 0:
            raise UserError(f"expires_in_s={expires_in_s!r}: a token must live longer than 0 s (or give None: never)")
        now = self.clock()
        with self._conn("creating a token", write=True) as conn:
            if role != "run":
                for row in conn.execute(sa.select(t.tokens).where(t.tokens.c.name == name,
                                                                  t.tokens.c.revoked_at.is_(None))).mappings():
                    taken = self._record(row)
                    if taken.is_active(now):
                        raise UserError(f"a token named {name!r} exists (id {taken.token_id}, role {taken.role}): "
                                        f"pick another name, or revoke it first (runlab token revoke {name})")
            token_id = secrets.token_hex(6)
            while self._row(conn, token_id) is not None:  # 48 bits: a repeat is all but impossible
                token_id = secrets.token_hex(6)
            token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            record = TokenRecord(token_id=token_id, name=name, role=role, run_id=run_id, created_at=now,
                                 expires_at=None if expires_in_s is None else now + expires_in_s,
                                 revoked_at=None, last_used_at=None)
            conn.execute(t.tokens.insert().values(**record.__dict__,
                                                  secret_hash=hash_token(token, iterations=self.iterations)))
        return token, record

    def list(self, include_revoked: bool = False) -> list[TokenRecord]:
        """Every token, oldest first (expired ones too; revoked ones with ``include_revoked``)."""
        query = sa.select(t.tokens).order_by(t.tokens.c.created_at, t.tokens.c.id)
        if not include_revoked:
            query = query.where(t.tokens.c.revoked_at.is_(None))
        with self._conn("listing tokens") as conn:
            return [self._record(row) for row in conn.execute(query).mappings()]

    def get(self, name_or_id: str) -> TokenRecord:
        """The token of that id, else the newest one of that name."""
        with self._conn("reading a token") as conn:
            row = self._row(conn, name_or_id) or conn.execute(
                sa.select(t.tokens).where(t.tokens.c.name == name_or_id)
                .order_by(t.tokens.c.created_at.desc())).mappings().first()
        if row is None:
            raise NotFoundError(f"no token has the name or id {name_or_id!r}: runlab token list shows them")
        return self._record(row)

    def revoke(self, name_or_id: str) -> int:
        """Revoke the token of that id, or every unrevoked token of that name; how many were revoked.

        This process refuses them at once; other server processes within ``recheck_s`` seconds.
        """
        match = sa.or_(t.tokens.c.token_id == name_or_id, t.tokens.c.name == name_or_id)
        return self._revoke_where(match, "revoking a token")

    def revoke_run_tokens(self, run_id: str) -> int:
        """Revoke every token of run ``run_id`` (when it ends); how many were revoked."""
        return self._revoke_where(sa.and_(t.tokens.c.run_id == run_id, t.tokens.c.role == "run"),
                                  "revoking a run's tokens")

    def _revoke_where(self, match: sa.ColumnElement[bool], doing: str) -> int:
        where = sa.and_(match, t.tokens.c.revoked_at.is_(None))
        with self._conn(doing, write=True) as conn:
            ids = set(conn.execute(sa.select(t.tokens.c.token_id).where(where)).scalars())
            if ids:
                conn.execute(t.tokens.update().where(t.tokens.c.token_id.in_(ids)).values(revoked_at=self.clock()))
        self._forget(ids)
        return len(ids)

    # -- verify --------------------------------------------------------------------------------

    def cached(self, token: str) -> TokenRecord | None:
        """The token's record when memory vouches for it (verified, row read within ``recheck_s``, not
        expired): no database, no hashing, so callable on an event loop. None: call :meth:`verify`."""
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            hit = self._cache.get(key)
        if hit is None or self.monotonic() - hit[1] >= self.recheck_s or hit[0].is_expired(self.clock()):
            return None
        return hit[0]

    def verify(self, token: str) -> TokenRecord:
        """The record of an active token; :class:`AuthenticationError` (with what to do) for anything else:
        not runlab's format, unknown id, wrong secret, expired, revoked."""
        if not isinstance(token, str) or not token:
            raise AuthenticationError(f"no token given: {_HOW}")
        token_id = token_id_of(token)
        if token_id is None:
            shape = "it is cut short or has extra characters" if token.startswith(PREFIX) else \
                "it does not start with rl_"
            raise AuthenticationError(f"the token is not a runlab token ({shape}; they read rl_<id>_<secret>, as "
                                      f"`runlab token create` printed it): {_HOW}")
        key = hashlib.sha256(token.encode()).hexdigest()
        now_m = self.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            rejected = self._rejected.get(key)
        if hit is not None and now_m - hit[1] < self.recheck_s:
            self._check_active(hit[0])  # expiry, from memory
            return hit[0]
        if rejected is not None and now_m - rejected < self.recheck_s:
            raise AuthenticationError(self._unknown_message(token_id))
        with self._conn("checking a token") as conn:
            row = self._row(conn, token_id)
        if row is None:
            raise AuthenticationError(self._unknown_message(token_id))
        record = self._record(row)
        if hit is None:
            if not check_hash(token, str(row["secret_hash"])):
                with self._lock:
                    self._rejected[key] = now_m
                    while len(self._rejected) > _CACHE_MAX:
                        self._rejected.popitem(last=False)
                raise AuthenticationError(self._unknown_message(token_id))
        self._check_active(record)
        record = self._touch(record)
        self._remember(key, record)
        return record

    def check_id(self, token_id: str) -> TokenRecord:
        """The record of the active token ``token_id`` (a studio session names its token by id; the
        session's signature stands for the secret), cached as :meth:`verify` does."""
        key = "id:" + token_id
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and self.monotonic() - hit[1] < self.recheck_s:
            self._check_active(hit[0])
            return hit[0]
        with self._conn("checking a token") as conn:
            row = self._row(conn, token_id)
        if row is None:
            raise AuthenticationError(f"the studio session's token {token_id} no longer exists: log in again with a "
                                      "valid token")
        record = self._record(row)
        self._check_active(record)
        record = self._touch(record)
        self._remember(key, record)
        return record

    def _unknown_message(self, token_id: str) -> str:
        return (f"the token is not valid: no token has id {token_id}, or its secret is wrong (copy the whole token "
                f"`runlab token create` printed); {_HOW}")

    def _check_active(self, record: TokenRecord) -> None:
        if record.revoked_at is not None:
            raise AuthenticationError(
                f"token {record.name!r} (id {record.token_id}) was revoked on {_when(record.revoked_at)}: ask an "
                f"admin for a new one (runlab token create --name NAME)")
        if record.is_expired(self.clock()):
            raise AuthenticationError(
                f"token {record.name!r} (id {record.token_id}) expired on {_when(record.expires_at)}: ask an admin "
                "for a new one (runlab token create --name NAME --expires 30d)")

    def _touch(self, record: TokenRecord) -> TokenRecord:
        """Record the use (best effort: a busy store does not fail the request)."""
        now = self.clock()
        try:
            with self._conn("recording a token's use", write=True, busy_ms=250) as conn:
                conn.execute(t.tokens.update().where(t.tokens.c.token_id == record.token_id)
                             .values(last_used_at=now))
        except StoreError:
            return record
        return TokenRecord(**{**record.__dict__, "last_used_at": now})

    # -- the server's secret ---------------------------------------------------------------------

    def session_secret(self) -> bytes:
        """The key that signs studio sessions: made once per store (meta ``server.session_secret``), so
        every server process of the store accepts the sessions of the others."""
        if self._secret is not None:
            return self._secret
        meta = t.workspace_meta
        query = sa.select(meta.c.value).where(meta.c.key == SESSION_SECRET_META)
        with self._conn("reading the server's session key") as conn:
            value = conn.execute(query).scalar()
        if value is None:
            try:
                with self._conn("making the server's session key", write=True) as conn:
                    conn.execute(meta.insert().values(key=SESSION_SECRET_META, value=secrets.token_urlsafe(48)))
            except StoreError as exc:  # another server process made it first: read theirs
                if not isinstance(exc.__cause__, IntegrityError):
                    raise
            with self._conn("reading the server's session key") as conn:
                value = conn.execute(query).scalar()
        self._secret = str(value).encode()
        return self._secret


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def issue_run_token(store_engine: Engine, run_id: str, ttl_s: float | None) -> str:
    """A token for submitted run ``run_id``, which may write that run only (its metrics, files, status);
    it expires after ``ttl_s`` seconds (None: when revoked, see :func:`revoke_run_tokens`)."""
    token, _record = TokenStore(store_engine).create(_run_token_name(run_id), "run", run_id=run_id,
                                                     expires_in_s=ttl_s)
    return token


def revoke_run_tokens(store_engine: Engine, run_id: str) -> int:
    """Revoke the tokens of run ``run_id`` (the agent does when the run ends)."""
    return TokenStore(store_engine).revoke_run_tokens(run_id)


def _run_token_name(run_id: str) -> str:
    name = f"run:{run_id}"
    return name if _NAME.fullmatch(name) else "run:" + hashlib.sha256(run_id.encode()).hexdigest()[:32]
