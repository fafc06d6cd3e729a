"""Unit tests of the HTTP transport's bearer tokens (vllm_mcp/protocol/auth.py); no engine."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from pathlib import Path

import pytest

from vllm_mcp.protocol import auth

A = "a" * 20
B = "b-token-" + "x" * 30


def test_bare_and_named_lines_comments_and_blanks() -> None:
    callers = auth.parse_tokens(f"# who may call\n\n{A}\n  alice:{B}  \n")
    assert [(c.name, c.token.decode()) for c in callers] == [("default", A), ("alice", B)]


def test_a_token_may_contain_a_colon_after_the_name() -> None:
    (caller,) = auth.parse_tokens(f"ops:{A}:more")
    assert (caller.name, caller.token.decode()) == ("ops", f"{A}:more")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no token in it"),
        ("# only a comment\n", "no token in it"),
        ("alice:short\n", "tokens:1: token shorter than 16 characters"),
        (f"alice:{A}\nalice:{B}\n", "tokens:2: caller 'alice' appears twice"),
        (f"alice:{A}\nbob:{A}\n", "tokens:2: the same token is given to two callers"),
        (f"alice:{A} {A}\n", "tokens:1: a token must be printable ASCII without spaces"),
        (f"alice:{A}é\n", "tokens:1: a token must be printable ASCII"),
    ],
)
def test_bad_files_name_the_line_but_never_the_token(text: str, problem: str) -> None:
    with pytest.raises(auth.TokenFileError) as e:
        auth.parse_tokens(text, "tokens")
    assert problem in str(e.value)
    assert A not in str(e.value) and B not in str(e.value)


def test_match_compares_every_entry_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    callers = auth.parse_tokens(f"alice:{A}\nbob:{B}\n")
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.match(callers, A) == "alice"
    assert len(compared) == 2  # no early exit on the first match
    assert auth.match(callers, B) == "bob"
    assert auth.match(callers, A[:-1]) is None
    assert auth.match(callers, "é" * 20) is None


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    os.replace(tmp, path)


def test_the_verifier_follows_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write(path, f"alice:{A}\n")
    verifier = auth.TokenFileVerifier(path)

    def who(token: str) -> str | None:
        found = asyncio.run(verifier.verify_token(token))
        return None if found is None else found.client_id

    assert who(A) == "alice"
    assert who(B) is None
    write(path, f"alice:{B}\n")
    assert who(A) is None
    assert who(B) == "alice"
    found = asyncio.run(verifier.verify_token(B))
    assert found is not None and B not in found.model_dump_json()  # the secret does not travel on


def test_a_broken_rotation_locks_everyone_out_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    write(path, f"alice:{A}\n")
    verifier = auth.TokenFileVerifier(path)
    write(path, "alice:tooshort\n")
    with caplog.at_level(logging.ERROR):
        assert asyncio.run(verifier.verify_token(A)) is None
        assert asyncio.run(verifier.verify_token(A)) is None
    assert len([r for r in caplog.records if "token file unusable" in r.message]) == 1
    write(path, f"alice:{A}\n")
    assert asyncio.run(verifier.verify_token(A)) is not None


def test_a_missing_file_is_an_error_at_start(tmp_path: Path) -> None:
    with pytest.raises(auth.TokenFileError, match="no such file"):
        auth.TokenFileVerifier(tmp_path / "absent")


def test_a_file_readable_by_others_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{A}\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        auth.TokenFileVerifier(path)
    assert any("readable by other users" in r.message for r in caplog.records)
    assert all(A not in r.getMessage() for r in caplog.records)


def test_the_client_token_is_the_first_entry(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# mine\nalice:{A}\nbob:{B}\n")
    assert auth.read_client_token(path) == A


def _namespace(access_token: object) -> str | None:
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    request = type("Request", (), {"scope": {"user": AuthenticatedUser(access_token)}})()  # type: ignore[arg-type]
    return auth.session_namespace(type("Ctx", (), {"request": request})())


def test_oauth_and_token_file_callers_never_share_a_namespace(tmp_path: Path) -> None:
    """Issue 27, finding 4: on main an OAuth subject 'alice' reached token-file caller 'alice''s
    sessions (``caller_of`` gave both 'alice'; only the token file's name list kept them apart,
    and it is empty while the file is unreadable). Now the namespaces differ by construction."""
    from mcp.server.auth.provider import AccessToken

    from vllm_mcp.tools.limits import session_key

    path = tmp_path / "tokens"
    path.write_text("alice:" + "a" * 32 + "\n")
    from_file = asyncio.run(auth.TokenFileVerifier(path).verify_token("a" * 32))
    from_issuer = AccessToken(
        token="[redacted]", client_id="alice", scopes=[], claims={"iss": "https://i", "caller": "alice"}
    )
    assert _namespace(from_file) == "alice"  # as on main: stored token-file sessions stay reachable
    assert _namespace(from_issuer) == "oauth:alice"
    assert session_key(_namespace(from_file), "s") != session_key(_namespace(from_issuer), "s")
    path.write_text("")  # unreadable or invalid: the token file's names are gone
    assert _namespace(from_issuer) == "oauth:alice"
    assert auth.session_namespace(object()) is None  # stdio: no authentication, no namespace
