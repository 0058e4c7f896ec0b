"""API keys, scopes and the rate limit, without HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.security import (
    KEYS_ENV,
    KEYS_FILE_ENV,
    AuthenticationError,
    KeyRing,
    PermissionDeniedError,
    RateLimitedError,
    RateLimiter,
    Scope,
    hash_key,
    load_keys,
    new_key,
)
from graph.errors import ConfigError


def test_new_key_round_trips_through_the_env_and_is_stored_hashed() -> None:
    secret, entry = new_key("checkout", [Scope.SCORE])
    assert secret not in entry  # only the digest is written down
    assert entry.endswith(hash_key(secret))
    ring = KeyRing(load_keys({KEYS_ENV: entry}))
    key = ring.authorise(secret, Scope.SCORE)
    assert key.name == "checkout"


def test_wrong_scope_is_denied_and_unknown_or_missing_keys_are_unauthenticated() -> None:
    s1, e1 = new_key("checkout", [Scope.SCORE])
    s2, e2 = new_key("analyst", [Scope.INVESTIGATE, Scope.LABEL])
    ring = KeyRing(load_keys({KEYS_ENV: f"{e1};{e2}"}))
    with pytest.raises(PermissionDeniedError, match="'checkout' lacks the 'label' scope"):
        ring.authorise(s1, Scope.LABEL)
    assert ring.authorise(s2, Scope.LABEL).name == "analyst"
    with pytest.raises(AuthenticationError, match="unknown"):
        ring.authorise(s1 + "x", Scope.SCORE)
    with pytest.raises(AuthenticationError, match="missing"):
        ring.authorise(None, Scope.SCORE)
    with pytest.raises(AuthenticationError):
        ring.authorise(hash_key(s1), Scope.SCORE)  # the digest itself is not a key


def test_keys_file_with_comments(tmp_path: Path) -> None:
    secret, entry = new_key("investigator", [Scope.INVESTIGATE])
    path = tmp_path / "keys.txt"
    path.write_text(f"# investigators\n{entry}  # Alice's team\n\n")
    keys = load_keys({KEYS_FILE_ENV: str(path)})
    assert [k.name for k in keys] == ["investigator"]
    assert KeyRing(keys).authorise(secret, Scope.INVESTIGATE).scopes == frozenset({Scope.INVESTIGATE})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("checkout score", "3 fields|fields"),
        ("checkout scores " + "a" * 64, "unknown scope 'scores'"),
        ("checkout score rw_plaintextkey", "SHA-256 digest, not a key"),
    ],
)
def test_malformed_entries_name_the_problem_without_echoing_secrets(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_keys({KEYS_ENV: entry})
    assert "rw_plaintextkey" not in str(info.value)
    assert KEYS_ENV in str(info.value)


def test_duplicate_names_are_refused() -> None:
    _, e1 = new_key("checkout", [Scope.SCORE])
    _, e2 = new_key("checkout", [Scope.LABEL])
    with pytest.raises(ConfigError, match="given twice: checkout"):
        load_keys({KEYS_ENV: f"{e1};{e2}"})


def test_rate_limit_allows_a_burst_then_refills_per_key() -> None:
    limiter = RateLimiter(rate=10.0, burst=3)
    for _ in range(3):
        limiter.take("checkout", now=100.0)
    with pytest.raises(RateLimitedError) as info:
        limiter.take("checkout", now=100.0)
    assert info.value.retry_after == pytest.approx(0.1)
    limiter.take("analyst", now=100.0)  # another key has its own bucket
    limiter.take("checkout", now=100.1)  # one token back after 1/rate seconds
    with pytest.raises(RateLimitedError):
        limiter.take("checkout", now=100.1)


def test_rate_limit_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="rate > 0"):
        RateLimiter(rate=0, burst=1)
