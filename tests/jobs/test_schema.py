"""`musedub schema NAME`: every command's options as a JSON Schema, from the pydantic models the CLI validates with."""

from __future__ import annotations

import json

import pytest

from musedub.jobs.cli import main


@pytest.mark.parametrize("name", ["dub", "manifest", "batch", "catalog", "preprocess", "index", "train", "eval"])
def test_every_command_prints_its_options_schema(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", name]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and schema["properties"]
    assert main(["schema", "nope"]) == 2 and "give one of dub, manifest" in capsys.readouterr().err
