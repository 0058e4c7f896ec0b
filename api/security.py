"""API keys with scopes, and a per-key rate limit.

Keys are random secrets handed to callers; the service only ever holds their SHA-256 digests
(a fast hash is right here: the keys are long and random, unlike passwords). A presented key is
hashed and compared with *every* stored digest by ``hmac.compare_digest``, so the time taken
does not reveal which key, or how much of one, matched.

Where the digests come from (``load_keys``): ``RINGWATCH_API_KEYS`` (entries separated by ``;``)
and/or the file named by ``RINGWATCH_API_KEYS_FILE`` (one entry per line, ``#`` comments). An
entry is ``<name> <scope>[,<scope>...] <sha256-hex>``, for example
``checkout score 9f86d0...``. ``ringwatch apikey --name checkout --scopes score`` makes a new key
and prints the entry. No key, digest or request body is ever logged; the key's *name* is.

Scopes: ``score`` (the checkout service), ``investigate`` (read subgraphs and rings), ``label``
(post verdicts).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from graph.errors import ConfigError, RingwatchError

KEYS_ENV = "RINGWATCH_API_KEYS"
KEYS_FILE_ENV = "RINGWATCH_API_KEYS_FILE"
#: Header that carries the key (``Authorization: Bearer <key>`` is accepted too).
KEY_HEADER = "X-API-Key"
_SHA256_HEX = 64


class Scope(enum.StrEnum):
    """What a key may do."""

    SCORE = "score"
    INVESTIGATE = "investigate"
    LABEL = "label"


class AuthenticationError(RingwatchError):
    """No key, or a key the service does not know (HTTP 401)."""


class PermissionDeniedError(RingwatchError):
    """A known key without the scope the route needs (HTTP 403)."""

    def __init__(self, key_name: str, scope: Scope) -> None:
        self.key_name = key_name
        self.scope = scope
        super().__init__(f"API key {key_name!r} lacks the {scope.value!r} scope")


class RateLimitedError(RingwatchError):
    """The key spent its request budget (HTTP 429); ``retry_after`` seconds until a token."""

    retryable = True

    def __init__(self, key_name: str, retry_after: float) -> None:
        self.key_name = key_name
        self.retry_after = retry_after
        super().__init__(f"API key {key_name!r} is over its rate limit; retry in {retry_after:.2f} s")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One caller: a name for logs and limits, its scopes, the SHA-256 digest of its secret."""

    name: str
    scopes: frozenset[Scope]
    digest: bytes


def hash_key(secret: str) -> str:
    """The hex SHA-256 digest of a key, as it goes into the keys file."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key(name: str, scopes: Iterable[Scope]) -> tuple[str, str]:
    """A fresh random key (256 bits, URL-safe) and its keys-file entry.

    Raises:
        ConfigError: the name is empty or has whitespace, or no scope is given.
    """
    scope_list = sorted({Scope(s) for s in scopes})
    if not name or any(c.isspace() for c in name):
        raise ConfigError(f"API key name {name!r} must be non-empty without spaces")
    if not scope_list:
        raise ConfigError(f"API key {name!r}: give at least one scope ({', '.join(s.value for s in Scope)})")
    secret = "rw_" + secrets.token_urlsafe(32)
    return secret, f"{name} {','.join(s.value for s in scope_list)} {hash_key(secret)}"


def parse_entry(entry: str, where: str) -> ApiKey:
    """One ``<name> <scopes> <sha256-hex>`` entry.

    Raises:
        ConfigError: names ``where`` (env var or file:line) and what is wrong, never the digest.
    """
    parts = entry.split()
    if len(parts) != 3:
        raise ConfigError(f"{where}: an API key entry is '<name> <scope>[,<scope>] <sha256-hex>' ({len(parts)} fields)")
    name, scope_text, digest = parts
    scopes: set[Scope] = set()
    for s in scope_text.split(","):
        try:
            scopes.add(Scope(s))
        except ValueError:
            raise ConfigError(
                f"{where}: key {name!r} has unknown scope {s!r} (one of {', '.join(x.value for x in Scope)})"
            ) from None
    if len(digest) != _SHA256_HEX or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise ConfigError(f"{where}: key {name!r}: the third field must be a 64-hex-digit SHA-256 digest, not a key")
    return ApiKey(name=name, scopes=frozenset(scopes), digest=bytes.fromhex(digest))


def load_keys(env: Mapping[str, str] | None = None) -> tuple[ApiKey, ...]:
    """The keys from ``RINGWATCH_API_KEYS`` and ``RINGWATCH_API_KEYS_FILE``.

    Raises:
        ConfigError: a malformed entry, an unreadable file, or a name given twice.
    """
    env = os.environ if env is None else env
    keys: list[ApiKey] = []
    for i, entry in enumerate(env.get(KEYS_ENV, "").split(";")):
        if entry.strip():
            keys.append(parse_entry(entry, f"{KEYS_ENV} entry {i + 1}"))
    if path_text := env.get(KEYS_FILE_ENV, "").strip():
        path = Path(path_text)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{KEYS_FILE_ENV}={str(path)!r}: cannot read: {e}") from e
        for n, line in enumerate(lines, start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                keys.append(parse_entry(text, f"{path}:{n}"))
    names = [k.name for k in keys]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"API key names must be unique; given twice: {', '.join(dupes)}")
    return tuple(keys)


class KeyRing:
    """The known keys; ``authenticate`` finds a presented key's record in constant time."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, presented: str | None) -> ApiKey:
        """The record of ``presented``.

        Raises:
            AuthenticationError: no key given, or no stored digest matches.
        """
        if not presented:
            raise AuthenticationError(f"missing API key: send it in the {KEY_HEADER} header or as Authorization: Bearer <key>")
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: ApiKey | None = None
        for key in self._keys:  # no early exit: the same work whichever key matches
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise AuthenticationError("unknown API key")
        return found

    def authorise(self, presented: str | None, scope: Scope) -> ApiKey:
        """``authenticate``, then check the scope.

        Raises:
            AuthenticationError: see ``authenticate``.
            PermissionDeniedError: the key lacks ``scope``.
        """
        key = self.authenticate(presented)
        if scope not in key.scopes:
            raise PermissionDeniedError(key.name, scope)
        return key


class RateLimiter:
    """A token bucket per key name: ``rate`` requests per second on average, bursts up to
    ``burst``. Thread-safe; one per process (each API worker limits its own share).

    Raises:
        ConfigError: a rate or burst that is not positive.
    """

    def __init__(self, rate: float, burst: int) -> None:
        if not rate > 0 or burst < 1:
            raise ConfigError(f"rate limit needs rate > 0 and burst >= 1 (got rate={rate}, burst={burst})")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key_name: str, now: float | None = None) -> None:
        """Spend one token of ``key_name``.

        Raises:
            RateLimitedError: the bucket is empty; says when the next token comes.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key_name, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0 - 1e-9:  # tolerance: a refill of exactly one token may round below 1
                self._buckets[key_name] = (tokens, now)
                raise RateLimitedError(key_name, (1.0 - tokens) / self.rate)
            self._buckets[key_name] = (tokens - 1.0, now)
