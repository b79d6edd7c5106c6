"""create_org, create_user and create_api_key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from threads.keys import hash_api_key
from threads.models import ApiKey, Organization

from .conftest import Api

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_org_prints_its_id():
    output = run("create_org", "initech", "--name", "Initech")
    org = Organization.objects.get(slug="initech")
    assert output.strip() == str(org.pk) and org.name == "Initech"


def test_create_org_refuses_a_duplicate_or_a_bad_slug():
    run("create_org", "initech")
    with pytest.raises(CommandError, match="already exists"):
        run("create_org", "initech")
    with pytest.raises(CommandError, match="not a valid slug"):
        run("create_org", "Bad Slug!")
    assert Organization.objects.count() == 1


def test_create_user_makes_a_member_or_viewer_or_superuser(org):
    run("create_user", "ann", "--org", "acme", "--password", "pw-123456")
    run("create_user", "bob", "--org", "acme", "--role", "viewer", "--password", "pw-123456")
    run("create_user", "root", "--org", "acme", "--superuser", "--password", "pw-123456")
    users = {u.username: u for u in get_user_model().objects.select_related("membership")}
    assert users["ann"].membership.role == "member" and not users["ann"].is_staff
    assert users["bob"].membership.role == "viewer"
    assert users["root"].is_superuser and users["root"].is_staff
    assert users["ann"].check_password("pw-123456")


def test_create_user_needs_an_existing_org_and_a_new_name(org):
    with pytest.raises(CommandError, match="No organization"):
        run("create_user", "ann", "--org", "nope")
    run("create_user", "ann", "--org", "acme")
    with pytest.raises(CommandError, match="already exists"):
        run("create_user", "ann", "--org", "acme")


def test_create_api_key_prints_the_key_alone_on_the_last_line_and_it_works(org, thread):
    key = run("create_api_key", "--org", "acme", "--name", "ci", "--scope", "read").strip().splitlines()[-1]
    assert key.startswith("tk_")
    stored = ApiKey.objects.get(name="ci")
    assert stored.key_hash == hash_api_key(key) and stored.scope == "read"
    assert Api(key).get(f"/api/v1/threads/{thread.pk}").status_code == 200


def test_seed_demo_first_run_creates_once_and_prints_a_working_key():
    key = run("seed_demo", "--first-run", "--threads", "3").strip().splitlines()[-1]
    assert Api(key).get("/api/v1/threads").json()["results"].__len__() == 3
    later = run("seed_demo", "--first-run")
    assert Organization.objects.count() == 1 and ApiKey.objects.count() == 1
    # The key was shown once: a later start says how to mint another, runnable as printed.
    assert "tk_" not in later
    assert f"{os.path.relpath(sys.executable)} manage.py create_api_key --org demo" in later
    assert "manage.py changepassword demo-admin" in later


def test_make_run_shows_a_key_on_the_first_start_and_how_to_mint_one_on_later_starts(tmp_path):
    """`make run`'s own seeding line, run as make runs it, twice on a new database; the command a
    later start prints is then run as printed."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".venv" / "bin" / "python").exists():
        pytest.skip("make run's virtualenv (.venv) is not there")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env = {k: v for k, v in env.items() if not k.startswith(("DJANGO_", "MAKE", "MFLAGS"))}
    dry = subprocess.run(["make", "-n", "run"], cwd=root, env=env, capture_output=True, text=True, check=True)
    seed = next(line for line in dry.stdout.splitlines() if "seed_demo" in line)
    assert "--first-run" in seed

    def shell(command: str) -> str:
        done = subprocess.run(command, shell=True, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    shell(".venv/bin/python manage.py migrate --noinput -v0")
    first = shell(seed).splitlines()
    assert first[-2:][0] == "Write API key (shown once):" and first[-1].startswith("tk_")
    later = shell(seed)
    assert "tk_" not in later
    mint = next(line for line in later.splitlines() if "create_api_key" in line).split(":", 1)[1].strip()
    assert mint == ".venv/bin/python manage.py create_api_key --org demo"
    assert shell(mint).splitlines()[-1].startswith("tk_")
