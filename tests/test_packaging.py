"""Each member builds a wheel and installs alone into a fresh venv with only its own (locked) dependencies."""

import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow

UV = shutil.which("uv")


def uv(*args, cwd=ROOT, timeout=900):
    proc = subprocess.run([UV, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"uv {' '.join(args)}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def fresh_install(tmp_path, name, packages):
    """Build the wheels of ``packages``, export the locked requirements of ``name`` and install both into a
    new venv; returns the venv's python."""
    dist = tmp_path / "dist"
    for p in packages:
        uv("build", "--package", p, "--wheel", "--out-dir", str(dist))
    reqs = tmp_path / f"{name}-requirements.txt"
    uv(
        "export",
        "--package",
        name,
        "--frozen",
        "--no-dev",
        "--no-emit-workspace",
        "--no-hashes",
        "--output-file",
        str(reqs),
    )
    venv = tmp_path / f"venv-{name}"
    uv("venv", str(venv), "--python", sys.executable)
    py = venv / "bin" / "python"
    uv("pip", "install", "--python", str(py), "-r", str(reqs), *map(str, dist.glob("*.whl")))
    return py


def check(py, code):
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


OTHERS = ("torchvision", "torchaudio", "torch_geometric", "open3d", "monai", "transformers", "lightly")


@pytest.mark.skipif(UV is None, reason="uv is not on PATH")
@pytest.mark.parametrize(
    "name,wheels,imports,listed",
    [
        ("ssl-core", ["ssl-core"], "ssl_core.run, ssl_core.cli", "no modality packages are installed"),
        ("ssl-vision", ["ssl-core", "ssl-vision"], "ssl_vision.modality, torchvision", "vision/simclr"),
    ],
)
def test_member_installs_alone(tmp_path, name, wheels, imports, listed):
    py = fresh_install(tmp_path, name, wheels)
    own = {"ssl-vision": "torchvision"}.get(name)
    absent = [m for m in (*OTHERS, "ssl_audio", "ssl_graph") if m != own]
    out = check(py, f"import importlib.util as u, {imports}\nprint([m for m in {absent!r} if u.find_spec(m)])")
    assert out.strip() == "[]", f"{name} pulled in {out.strip()}"
    proc = subprocess.run([str(py.parent / "selfsup"), "list"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and listed in proc.stdout
