"""The image's build, replayed without a Docker engine: the context that
Dockerfile.dockerignore lets through builds wheels with the Dockerfile's own
`pip wheel` step, they install offline as in the runtime stage, the console
script serves the widget, and the HEALTHCHECK command tells up from down."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ops_support import (
    DEPLOY,
    REPO,
    dockerignore_excludes,
    free_port,
    http_get,
    stop,
    wait_until_answers,
)

pytestmark = pytest.mark.slow

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def build_context(target: Path) -> None:
    """Copies what `docker build -f deploy/Dockerfile .` would send."""
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for directory, subdirectories, files in os.walk(REPO):
        subdirectories[:] = [
            d for d in subdirectories if d not in {".git", "node_modules", ".venv"}
        ]
        for name in files:
            source = Path(directory) / name
            relative = source.relative_to(REPO).as_posix()
            if not dockerignore_excludes(patterns, relative):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / relative)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert completed.returncode == 0, (
        f"{argv} exited {completed.returncode}:\n{completed.stdout}{completed.stderr}"
    )
    return completed  # type: ignore[no-any-return]


def healthcheck_argv(port: int) -> list[str]:
    """The Dockerfile's HEALTHCHECK command, aimed at `port`."""
    match = re.search(r"HEALTHCHECK .*?CMD (\[.*?\])\n", DOCKERFILE, re.S)
    assert match, "no exec-form HEALTHCHECK in the Dockerfile"
    argv: list[str] = json.loads(match.group(1))
    return [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in argv]


def test_image_build_installs_and_serves(tmp_path: Path) -> None:
    # The steps replayed here are the Dockerfile's; fail if it changes them.
    assert "RUN pip wheel --wheel-dir /wheels /src" in DOCKERFILE
    assert "pip install --no-index --find-links=/wheels /wheels/portalpulse-*.whl" in DOCKERFILE

    context = tmp_path / "context"
    build_context(context)
    assert (context / "service" / "portalpulse" / "cli.py").exists()
    assert not (context / "tests").exists() and not (context / "deploy").exists()

    wheels = tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(context)],
        timeout=600,
    )
    (wheel,) = wheels.glob("portalpulse-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    python = venv / "bin" / "python"
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            f"--find-links={wheels}",
            str(wheel),
        ],
        timeout=300,
    )

    port = free_port()
    workdir = tmp_path / "var-lib-portalpulse"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "PORTALPULSE_"))}
    # As CMD runs it, but on a loopback port: the console script of the wheel.
    argv = [str(venv / "bin" / "portalpulse"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", process, log, within=30)
        status, _, loader = http_get(f"http://127.0.0.1:{port}/widget.js", timeout=5)
        assert status == 200 and b"__WIDGET__" not in loader, "the wheel lacks the loader"
        versioned = re.search(rb"widget\.[0-9a-f]{12}\.js", loader)
        assert versioned, loader
        url = f"http://127.0.0.1:{port}/{versioned.group().decode()}"
        status, _, body = http_get(url, timeout=5)
        assert status == 200
        assert body == (REPO / "frontend-widget" / "widget.js").read_bytes(), (
            "the wheel lacks the widget"
        )

        check = healthcheck_argv(port)
        check[0] = str(python)
        healthy = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
        assert healthy.returncode == 0, healthy.stderr
    finally:
        stop(process)
    down = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
    assert down.returncode != 0, "the HEALTHCHECK passes with the service stopped"
