"""`rayscale apply` and `rayscale apiserver` flag errors, through the real CLI entry point
(nothing here starts a server or Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rayscale.apiserver import walkthrough
from rayscale.apiserver.store import Store
from rayscale.cli import app

pytestmark = pytest.mark.unit

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_apply_stores_the_walkthrough_configmap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYSCALE_HOME", str(tmp_path / "home"))
    cm = tmp_path / "ray-example.yaml"
    cm.write_text(walkthrough.config_map_yaml())
    code, out, err = run("apply", "-f", str(cm), "--namespace", "team-a")
    assert code == 0, err
    assert out == "configmap/ray-example stored (namespace team-a)\n"
    store = Store(tmp_path / "home" / "apiserver" / "apiserver.db")
    row = store.get("configmaps", "team-a", "ray-example")
    assert row is not None and set(row.body) == {"detached_actor.py", "terminate_detached_actor.py"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("apply", "-f", "/nonexistent.yaml"), "no such file"),
        (("apiserver", "--kubernetes", "--kubeconfig", "/nonexistent"), "no such file"),
        (("apiserver", "--kubeconfig", "/nonexistent"), "add --kubernetes"),
        (("apiserver", "--kubernetes", "--records-only"), "for the local backend"),
        (("apiserver", "--auth-token-file", "/nonexistent-token"), "cannot read it"),
    ],
)
def test_bad_input_is_a_one_line_error(
    args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYSCALE_HOME", str(tmp_path))
    code, _, err = run(*args)
    assert code == 2 and message in err and "Traceback" not in err


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    code, _, err = run("apiserver", "--auth-token-file", str(token))
    assert code == 2 and "empty" in err
