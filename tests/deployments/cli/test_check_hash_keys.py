"""`exports check` looks up the hash key blocks of `source.columns` on the Prefect API, as the
flow does before a run: a key that is not saved, or saved as another type, fails the check
naming its field; a saved HashKey passes. (The rest of `exports check`, without an API:
tests/deployments/cli/test_schedule.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.blocks.system import Secret
from typer.testing import CliRunner

from blocks.hash_key import HashKey
from deployments.cli.app import app
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("prefect_api")

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """prefect.yaml's entrypoints are read from the project folder."""
    monkeypatch.chdir(REPO_ROOT)


def project_hashing_with(key: str, folder: Path) -> Path:
    """The demo's `demo-orders` deployment, its `comment` column hashed with the block `key`."""
    deployments = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
    [spec] = [spec for spec in deployments if spec["name"] == "demo-orders"]
    spec.pop("schedules", None)
    columns: list[Any] = ["order_id", {"name": "comment", "hash": "hmac_sha256", "key": key}]
    spec["parameters"]["source"]["columns"] = columns
    path = folder / "prefect.yaml"
    path.write_text(yaml.safe_dump({"deployments": [spec]}))
    return path


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (
            "check-no-such-key",
            "no saved HashKey block named `check-no-such-key`; save one first, e.g. "
            "HashKey(...).save('check-no-such-key')",
        ),
        (  # a Secret block of that name is not a hash key
            "check-a-secret",
            "no saved HashKey block named `check-a-secret`; save one first, e.g. "
            "HashKey(...).save('check-a-secret')",
        ),
        ("secret/check-a-secret", "`secret` is not a block type it takes: exports-hash-key/"),
    ],
)
def test_a_hash_key_block_that_is_not_saved_fails_the_check(
    tmp_path: Path, key: str, problem: str
) -> None:
    Secret(value="not a hash key").save("check-a-secret", overwrite=True)
    path = project_hashing_with(key, tmp_path)
    result = runner.invoke(app, ["check", "--file", str(path)])
    assert result.exit_code == 1, result.stdout
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: deployment `demo-orders`: source: source.columns[1].key: {problem}"
    ]


def test_a_saved_hash_key_passes_the_check(tmp_path: Path) -> None:
    HashKey(key="k" * 32).save("check-hash-key", overwrite=True)
    path = project_hashing_with("check-hash-key", tmp_path)
    result = runner.invoke(app, ["check", "--file", str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{path}: 1 deployments, 0 schedules, 1 sources found — OK\n"
    assert "k" * 32 not in result.stdout + result.stderr
