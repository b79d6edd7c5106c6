"""Production settings pass Django's deployment checks; CSRF guards the session-based pages."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "JWT_SIGNING_KEY": secrets.token_urlsafe(50),
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "threads.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
}


def _inherited() -> dict:
    # The browser tests allow Django's async-unsafe calls in this process; a deployment must not.
    return {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**_inherited(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = check_deploy(PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_flags_the_development_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = check_deploy({**env, "DJANGO_SECRET_KEY": ""})
    assert result.returncode != 0 and "security.W009" in result.stdout + result.stderr


@pytest.mark.django_db
def test_admin_login_post_without_a_csrf_token_is_403():
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403


def test_the_deployment_guides_settings_pass_the_deploy_checks():
    """docs/deploy.md's steps, their `export` lines evaluated as a shell would, plus the TLS
    redirect the guide says to add behind a proxy: `check --deploy` is clean, as the guide says."""
    from .docs_support import parse

    steps = next(b for b in parse(ROOT / "docs" / "deploy.md").blocks if "manage.py serve" in b.code)
    exports = "\n".join(line for line in steps.code.splitlines() if line.startswith("export "))
    names = set(re.findall(r"^export (\w+)=", exports, re.M))
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "JWT_SIGNING_KEY", "DJANGO_ALLOWED_HOSTS"} <= names
    shell = subprocess.run(
        ["bash", "-c", f"set -e\n{exports}\nenv -0"], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    exported = dict(item.split("=", 1) for item in shell.stdout.split("\0") if "=" in item)
    guide = {name: exported[name] for name in names}
    assert len(guide["DJANGO_SECRET_KEY"]) >= 50 and guide["DATABASE_URL"].startswith("postgres://")
    result = check_deploy({**guide, "DJANGO_SECURE_SSL_REDIRECT": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
