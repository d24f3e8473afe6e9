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


@pytest.mark.skipif(UV is None, reason="uv is not on PATH")
def test_ssl_core_alone(tmp_path):
    py = fresh_install(tmp_path, "ssl-core", ["ssl-core"])
    out = check(
        py,
        "import importlib.util as u, ssl_core, ssl_core.run, ssl_core.cli\n"
        "print([m for m in ('torchvision', 'torchaudio', 'torch_geometric', 'open3d', 'monai',"
        " 'transformers', 'lightly', 'ssl_vision') if u.find_spec(m)])",
    )
    assert out.strip() == "[]"
    proc = subprocess.run([str(py.parent / "selfsup"), "list"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "no modality packages are installed" in proc.stdout


@pytest.mark.skipif(UV is None, reason="uv is not on PATH")
def test_ssl_vision_alone(tmp_path):
    py = fresh_install(tmp_path, "ssl-vision", ["ssl-core", "ssl-vision"])
    out = check(
        py,
        "import importlib.util as u, ssl_vision.modality, torchvision\n"
        "print([m for m in ('torchaudio', 'torch_geometric', 'open3d', 'monai', 'transformers',"
        " 'lightly', 'ssl_audio') if u.find_spec(m)])",
    )
    assert out.strip() == "[]"
    proc = subprocess.run([str(py.parent / "selfsup"), "list"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "vision/simclr" in proc.stdout
