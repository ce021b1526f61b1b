"""Methods from outside the suite: an installed package's ``rcsuite.methods`` entry point, a module
named in ``RCSUITE_METHOD_MODULES``, or ``load_method_modules``; each in a fresh process, as a
Ray worker or a subprocess would start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SPEC_MODULE = textwrap.dedent(
    '''
    from dataclasses import dataclass

    from suite.methods.registry import MethodSpec


    @dataclass
    class {cls}:
        width: int = 3


    SPEC = MethodSpec(name="{name}", display_name="{label}", colour="k", trainer="{name}.train:train",
                      config_section="{name}", config_class={cls})
    '''
)


def make_plugin(root: Path, name: str, *, entry_point: bool, body: str | None = None) -> None:
    """A package ``name`` under ``root``; with ``entry_point``, installed the way pip leaves it (a
    ``.dist-info`` with ``entry_points.txt`` beside it on the path), without pip."""
    package = root / name
    package.mkdir(parents=True)
    label = name.replace("_", " ").title()
    (package / "__init__.py").write_text(body if body is not None else
                                        SPEC_MODULE.format(name=name, cls=f"{label.replace(' ', '')}Config",
                                                           label=label))
    if entry_point:
        info = root / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[rcsuite.methods]\n{name} = {name}\n")


def run(code: str, path: Path, env_modules: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RCSUITE_METHOD_MODULES"}
    env["PYTHONPATH"] = os.pathsep.join([str(path), str(REPO)])
    if env_modules is not None:
        env["RCSUITE_METHOD_MODULES"] = env_modules
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


REPORT = (
    "import json\n"
    "from suite.config import build_config\n"
    "from suite.methods.registry import method_names, display_name\n"
    "cfg = build_config(preset='tiny', overrides=['model.method={name}', '{name}.width=5'])\n"
    "print(json.dumps({{'names': list(method_names()), 'label': display_name('{name}'), 'width': cfg.{name}.width}}))\n"
)


def test_an_installed_entry_point_registers_in_a_fresh_process(tmp_path):
    make_plugin(tmp_path, "toy_plugin_ep", entry_point=True)
    result = run(REPORT.format(name="toy_plugin_ep"), tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["names"][:5] == ["rcae", "convae", "fae", "hfr", "draem"] and "toy_plugin_ep" in out["names"]
    assert out["label"] == "Toy Plugin Ep" and out["width"] == 5
    # without the dist-info the package is importable but not a method
    (tmp_path / "toy_plugin_ep-0.1.dist-info" / "entry_points.txt").unlink()
    result = run(REPORT.format(name="toy_plugin_ep"), tmp_path)
    assert result.returncode != 0 and "toy_plugin_ep" in result.stderr


def test_modules_from_the_environment_and_load_method_modules_are_idempotent(tmp_path):
    make_plugin(tmp_path, "toy_plugin_env", entry_point=False)
    make_plugin(tmp_path, "toy_plugin_cli", entry_point=False)
    code = (
        "import json, os\n"
        "from suite.methods.registry import load_method_modules, method_names, method_specs\n"
        "load_method_modules(['toy_plugin_cli', 'toy_plugin_env'])\n"
        "load_method_modules(['toy_plugin_cli'])\n"
        "names = list(method_names())\n"
        "print(json.dumps({'names': names, 'env': os.environ['RCSUITE_METHOD_MODULES']}))\n"
    )
    # the environment lists one module twice: loaded once
    result = run(code, tmp_path, env_modules="toy_plugin_env, toy_plugin_env")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["names"].count("toy_plugin_env") == 1 and out["names"].count("toy_plugin_cli") == 1
    # children of this process find the module listed on its command line
    assert out["env"].split(",")[-1] == "toy_plugin_cli"


def test_a_broken_plugin_is_an_error_naming_it(tmp_path):
    code = "from suite.methods.registry import method_names\nmethod_names()\n"
    make_plugin(tmp_path, "toy_plugin_broken", entry_point=False, body="raise RuntimeError('boom')\n")
    result = run(code, tmp_path, env_modules="toy_plugin_broken")
    assert result.returncode != 0
    assert "PluginError" in result.stderr and "toy_plugin_broken" in result.stderr and "boom" in result.stderr
    result = run(code, tmp_path, env_modules="no_such_plugin_module")
    assert result.returncode != 0 and "no_such_plugin_module" in result.stderr
    make_plugin(tmp_path, "toy_plugin_nospec", entry_point=True, body="X = 1\n")
    result = run(code, tmp_path, env_modules="")
    assert result.returncode != 0
    assert "toy_plugin_nospec" in result.stderr and "SPEC" in result.stderr
