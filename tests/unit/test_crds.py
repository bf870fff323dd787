"""The checked-in deploy/crds.yaml is exactly what `rayscale crds` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rayscale.builders.crds import crds, crds_yaml
from rayscale.cli import app

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "crds.yaml"


def test_checked_in_crds_match_the_builder() -> None:
    assert DEPLOY.read_text(encoding="utf-8") == crds_yaml(), (
        "deploy/crds.yaml is stale: regenerate it with `rayscale crds > deploy/crds.yaml`"
    )


def test_cli_prints_the_crds_as_yaml() -> None:
    result = CliRunner().invoke(app, ["crds"])
    assert result.exit_code == 0
    assert list(yaml.safe_load_all(result.stdout)) == crds()


def test_every_worker_group_default_the_autoscaler_patches() -> None:
    spec = crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    group = spec["properties"]["workerGroupSpecs"]["items"]["properties"]
    assert group["replicas"]["default"] == 0
    assert group["scaleStrategy"]["default"] == {}
    assert group["scaleStrategy"]["properties"]["workersToDelete"]["default"] == []
