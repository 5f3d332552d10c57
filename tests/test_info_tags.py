"""`zoo info NAME:TAG` and `zoo list` describe the weights a name loads, not another tag's."""

from __future__ import annotations

import json

from click.testing import CliRunner

from zoo.cli import cli


def test_info_of_a_tag_shows_that_tags_preprocessing() -> None:
    runner = CliRunner()
    v1 = json.loads(runner.invoke(cli, ["info", "resnet50", "--json"]).output)
    v2 = json.loads(runner.invoke(cli, ["info", "resnet50:IMAGENET1K_V2", "--json"]).output)
    assert v1["weights_tag"] == "IMAGENET1K_V1" and v2["weights_tag"] == "IMAGENET1K_V2"
    assert v1["preprocess"]["resize"] == 256 and v2["preprocess"]["resize"] == 232
    text = runner.invoke(cli, ["info", "resnet50:imagenet1k_v2"]).output
    assert "preprocess (IMAGENET1K_V2): resize 232" in text


def test_list_quotes_the_accuracy_of_the_weights_a_bare_name_loads() -> None:
    rows = json.loads(CliRunner().invoke(cli, ["list", "resnet50", "--json"]).output)
    assert rows[0]["default_weights"] == "IMAGENET1K_V1"
    assert "acc@1 76.13" in rows[0]["description"]  # V1's, not V2's 80.86
