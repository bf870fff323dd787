"""The lean GCS client's token lookup follows Ray 2.60's order: RAY_AUTH_TOKEN, then the file
RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token; nothing unless RAY_AUTH_MODE=token."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayscale.ray.gcs_grpc import auth_metadata

pytestmark = pytest.mark.unit


def test_token_auth_off_sends_nothing(tmp_path: Path) -> None:
    assert auth_metadata({}) == ()
    assert auth_metadata({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "t"}) == ()


def test_the_token_comes_from_the_env_then_the_file(tmp_path: Path) -> None:
    path = tmp_path / "auth_token"
    path.write_text("from-file\n", encoding="utf-8")
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}
    assert auth_metadata(env) == (("authorization", "Bearer from-file"),)
    assert auth_metadata({**env, "RAY_AUTH_TOKEN": "from-env"}) == (
        ("authorization", "Bearer from-env"),
    )


def test_an_unreadable_token_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PermissionError, match=f"{missing}.*RAY_AUTH_TOKEN_PATH"):
        auth_metadata({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(missing)})
