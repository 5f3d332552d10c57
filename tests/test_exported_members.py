"""The public API is explicit: `zoo.__all__` is sorted, complete, and importing zoo stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import zoo


def test_all_is_sorted_and_complete() -> None:
    public = {
        name for name in dir(zoo) if not name.startswith("_") and not isinstance(getattr(zoo, name), types.ModuleType)
    }
    assert sorted(zoo.__all__) == list(zoo.__all__)
    assert public <= set(zoo.__all__), f"public but not in __all__: {public - set(zoo.__all__)}"
    for name in zoo.__all__:
        assert hasattr(zoo, name), name


def test_import_and_listing_do_not_import_torch() -> None:
    code = "import sys, zoo; names = zoo.list_models(); zoo.info(names[0]); print(len(names), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) >= 80
    assert out[1] == "False"


def test_cli_list_and_info_do_not_import_torch() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from zoo.cli import cli; r = CliRunner();"
        "a = r.invoke(cli, ['list', '--json']); b = r.invoke(cli, ['info', 'resnet18']);"
        "assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
