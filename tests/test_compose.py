"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The static tests hold both files to the code: the services and the order they start in,
every command a real CLI command with real options, every AGGREGATOR_ variable one the
code reads, every copied path present and let through .dockerignore. The topology test
starts the compose services as plain processes, the way Compose would (their command,
environment, config mount, dependency conditions and healthcheck), against a throwaway
PostgreSQL database and feeds served on 127.0.0.1.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aggregator.cli import main
from aggregator.config.settings import CONFIG_ENV, DATABASE_ENV, Settings, parse_settings
from aggregator.serve.app import ENDPOINTS
from aggregator.store.migrations import HEAD_REVISION
from aggregator.store.sql import normalize_url
from tests.conftest import FIXTURES, drop_postgres_database, fresh_postgres_database
from tests.feedserver import FeedServer, Route

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK_FILE = ROOT / "requirements.lock"
DEV_ENV_FILE = ROOT / "dev.env"  # development mode: docker compose --env-file dev.env
# what Compose must be given outside development mode: no default password anywhere
REQUIRED = {"POSTGRES_PASSWORD", DATABASE_ENV}
APP_SERVICES = ("migrate", "worker", "web")  # the services that run the aggregator image
# what the image's processes must be told: where the config is, which database to use
CONTAINER_ENV = (CONFIG_ENV, DATABASE_ENV)
RESTARTING = ("always", "unless-stopped", "on-failure")


# --------------------------------------------------------------------------- reading


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation (docs.docker.com/reference/compose-file/interpolation):
    ``${VAR}``, ``$VAR``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
    ``${VAR:+other}`` and ``$$``. Nested forms are not understood (a test checks the file
    uses none)."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        is_set = name in variables
        is_full = bool(variables.get(name))
        if op in (":-", "-"):
            return variables[name] if (is_full if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            assert is_full if op == ":?" else is_set, f"${name} is required: {arg}"
            return variables[name]
        if op in (":+", "+"):
            return arg if (is_full if op == ":+" else is_set) else ""
        return variables.get(name, "")

    return _VARIABLE.sub(one, value)


def interpolate_all(data: Any, variables: Mapping[str, str]) -> Any:
    """Every string value in the file interpolated (Compose leaves keys alone)."""
    if isinstance(data, dict):
        return {key: interpolate_all(value, variables) for key, value in data.items()}
    if isinstance(data, list):
        return [interpolate_all(value, variables) for value in data]
    if isinstance(data, str):
        return interpolate(data, variables)
    return data


def development_mode() -> dict[str, str]:
    """The variables of dev.env, as ``docker compose --env-file dev.env`` reads them."""
    variables = {}
    for line in DEV_ENV_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            variables[key.strip()] = value.strip()
    return variables


def variable_names(data: Any) -> set[str]:
    """The names of every variable the file interpolates."""
    if isinstance(data, dict):
        return set().union(*(variable_names(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(variable_names(v) for v in data))
    if isinstance(data, str):
        return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(data) if not m["escaped"]}
    return set()


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def mounts_of(service: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """Each volume as (source, target, read_only), from the short or the long form."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            mounts.append((source, target, "ro" in (mode[0].split(",") if mode else [])))
        else:
            mounts.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
    return mounts


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *argv = test
    assert kind in ("CMD", "CMD-SHELL"), test
    return ["/bin/sh", "-c", argv[0]] if kind == "CMD-SHELL" else argv


def seconds(duration: str) -> float:
    """A Compose duration (``1m30s``, ``10s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def parse_cli(argv: Sequence[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Resolve ``aggregator ARGV`` in the real click CLI without running it: the command's
    path (``("db", "upgrade")``) and every option given, converted by click's own types.
    Fails on an unknown command or option, a bad value, a group where a command was
    needed, or a missing required option."""
    command: click.Command = main
    path: list[str] = []
    given: dict[str, Any] = {}
    args = list(argv)
    while args:
        token = args.pop(0)
        where = " ".join(["aggregator", *path])
        if token.startswith("-"):
            options = {
                name: param
                for param in command.params
                if isinstance(param, click.Option)
                for name in (*param.opts, *param.secondary_opts)
            }
            name, has_value, inline = token.partition("=")
            assert name in options, f"`{where}` has no option {name} (only {sorted(options)})"
            param = options[name]
            if param.is_flag or param.count:
                given[str(param.name)] = True
                continue
            assert has_value or args, f"`{where} {name}` needs a value"
            raw = inline if has_value else args.pop(0)
            try:
                given[str(param.name)] = param.type.convert(raw, param, None)
            except click.BadParameter as e:
                raise AssertionError(f"`{where} {name} {raw}`: {e.format_message()}") from e
        else:
            assert isinstance(command, click.Group), f"`{where}` takes no argument {token!r}"
            assert token in command.commands, (
                f"`{where}` has no command {token!r} (only {sorted(command.commands)})"
            )
            command = command.commands[token]
            path.append(token)
    assert not isinstance(command, click.Group), f"`aggregator {' '.join(path)}` needs a command"
    missing = [p.name for p in command.params if p.required and p.name not in given]
    assert not missing, f"`aggregator {' '.join(path)}` needs {missing}"
    return tuple(path), given


def settings_in(path: Path) -> Settings:
    """The config file as the service would parse it (without this shell's overrides)."""
    return parse_settings(path.read_text(encoding="utf-8"), str(path), path.parent)


def names_the_code_reads() -> set[str]:
    """Every AGGREGATOR_ name in the package's source text."""
    names: set[str] = set()
    for module in (ROOT / "aggregator").rglob("*.py"):
        names |= set(re.findall(r"\bAGGREGATOR_[A-Z0-9_]+", module.read_text(encoding="utf-8")))
    return names


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def docker_values(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile() if kw == keyword]


def image_environment() -> dict[str, str]:
    env = {}
    for rest in docker_values("ENV"):
        for pair in shlex.split(rest):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def copied_sources() -> list[str]:
    sources = []
    for rest in docker_values("COPY"):
        tokens = [t for t in shlex.split(rest) if not t.startswith("--")]
        sources += tokens[:-1]
    return sources


def pip_installs() -> list[list[str]]:
    """The arguments of each ``pip install`` the Dockerfile runs."""
    installs = []
    for run in docker_values("RUN"):
        for command in re.split(r"&&|;", run):
            argv = shlex.split(command)
            if argv[:2] == ["pip", "install"]:
                installs.append(argv[2:])
    return installs


def locked() -> dict[str, str]:
    """requirements.lock as {normalized name: version}; fails on an entry that is not
    pinned with ``==`` or has anything but sha256 hashes after it."""
    pins = {}
    for entry in LOCK_FILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        requirement, *options = entry.split()
        pinned = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", requirement)
        assert pinned, f"requirements.lock: {requirement} is not pinned with =="
        name, version = pinned.groups()
        assert options, f"requirements.lock: {requirement} has no hash"
        assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", o) for o in options), entry
        pins[canonicalize_name(name)] = version
    return pins


def _glob_regex(pattern: str) -> re.Pattern[str]:
    assert "[" not in pattern, f"character classes are not handled here: {pattern}"
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def is_in_build_context(path: str) -> bool:
    """Whether .dockerignore lets ``path`` (relative to the repo) into the build context.
    Docker's rules (moby/patternmatcher, MatchesOrParentMatches): patterns apply in
    order, ``!`` lets back in, ``*`` and ``?`` stop at ``/`` while ``**`` crosses it,
    and a pattern that matches a folder matches everything in it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        lets_back_in = line.startswith("!")
        if lets_back_in != ignored:
            continue  # an ignore pattern for a path already ignored, or the reverse
        regex = _glob_regex(os.path.normpath(line.removeprefix("!").strip()).lstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not lets_back_in
    return not ignored


# --------------------------------------------------------------------------- compose file


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """In development mode, every other variable at its default."""
    resolved: dict[str, dict[str, Any]] = interpolate_all(compose["services"], development_mode())
    return resolved


def test_the_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", *APP_SERVICES} <= set(services)
    for name in APP_SERVICES:
        assert services[name].get("build") == ".", f"{name} does not run the Dockerfile's image"


def test_postgres_is_healthchecked_and_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    check = healthcheck_argv(postgres)
    assert check[0] == "pg_isready"
    env = environment_of(postgres)
    assert check[check.index("-U") + 1] == env["POSTGRES_USER"]
    assert check[check.index("-d") + 1] == env["POSTGRES_DB"]
    named = {source: target for source, target, _ in mounts_of(postgres)}
    assert named.get(next(iter(compose["volumes"]))) == "/var/lib/postgresql/data"
    assert postgres["restart"] in RESTARTING


def test_the_development_database_url_is_the_postgres_service(
    services: dict[str, dict[str, Any]],
) -> None:
    postgres = environment_of(services["postgres"])
    for name in APP_SERVICES:
        url = make_url(environment_of(services[name])[DATABASE_ENV])
        assert url.get_backend_name() == "postgresql"
        assert url.host == "postgres"
        assert (url.username, url.password, url.database) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            postgres["POSTGRES_DB"],
        )


def test_migrate_runs_db_upgrade_once_postgres_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert parse_cli(command_of(migrate))[0] == ("db", "upgrade")
    assert migrate["restart"] == "no", "a one-shot: a failed migration stops the rollout"


@pytest.mark.parametrize("name", ["worker", "web"])
def test_worker_and_web_start_once_the_migration_succeeded(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert services[name]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    assert services[name]["restart"] in RESTARTING


def test_the_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert parse_cli(command_of(worker))[0] == ("worker",)
    # `docker compose up --scale worker=3` fails on a fixed name or host port
    assert "container_name" not in worker
    assert "ports" not in worker
    # SIGTERM finishes fetches in flight; Docker must not SIGKILL them first
    shipped = settings_in(ROOT / "config" / "sources.yaml")
    assert seconds(worker["stop_grace_period"]) > shipped.defaults.total_timeout_seconds


def test_the_web_healthcheck_probes_a_real_endpoint_on_the_port_it_serves(
    services: dict[str, dict[str, Any]],
) -> None:
    web = services["web"]
    path, options = parse_cli(command_of(web))
    assert path == ("serve",)
    assert options["host"] == "0.0.0.0", "inside a container, listen on every interface"
    check = healthcheck_argv(web)
    assert check[:2] == ["python", "-c"], "the slim image has python, not curl"
    urls = re.findall(r"https?://[^'\"\s]+", check[2])
    assert len(urls) == 1, check
    match = re.fullmatch(r"http://(127\.0\.0\.1|localhost):(\d+)(/[^?]*)", urls[0])
    assert match, urls[0]
    assert int(match[2]) == options["port"]
    assert match[3] in {route for route, _ in ENDPOINTS}
    assert match[3] == "/readyz", "ready means the database answers, not only the process"
    published = [str(p).rsplit(":", 1) for p in web["ports"]]
    assert [int(container) for _, container in published] == [options["port"]]
    for key in ("interval", "timeout", "start_period"):
        seconds(web["healthcheck"][key])


def test_the_web_port_is_published_on_this_host_only_unless_asked(compose: dict[str, Any]) -> None:
    """Docker publishes a bare "8080:8080" on every interface, past the host's firewall
    rules (Docker writes its own): a trial started on a server was open to everyone."""

    def published(variables: dict[str, str]) -> list[str]:
        web = interpolate_all(compose["services"]["web"], {**development_mode(), **variables})
        return [str(p) for p in web["ports"]]

    assert published({}) == ["127.0.0.1:8080:8080"]
    assert published({"WEB_PORT": "9000"}) == ["127.0.0.1:9000:8080"]
    assert published({"WEB_ADDRESS": "0.0.0.0"}) == ["0.0.0.0:8080:8080"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_command_is_a_real_cli_command_with_real_options(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    parse_cli(command_of(services[name]))


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        pytest.param(["wrker"], "no command 'wrker'", id="unknown-command"),
        pytest.param(["db"], "needs a command", id="group-alone"),
        pytest.param(["serve", "--prot", "1"], "no option --prot", id="unknown-option"),
        pytest.param(["serve", "--port", "http"], "not a valid integer", id="bad-value"),
        pytest.param(["--log-level", "LOUD", "worker"], "LOUD", id="bad-choice"),
        pytest.param(["worker", "--port", "1"], "no option --port", id="option-elsewhere"),
        pytest.param(["export"], "needs ['out_dir']", id="missing-required"),
        pytest.param(["serve", "--port"], "needs a value", id="missing-value"),
    ],
)
def test_the_cli_check_catches_what_compose_would_only_find_at_start(
    argv: list[str], complaint: str
) -> None:
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        parse_cli(argv)


def test_every_aggregator_variable_is_one_the_code_reads(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    read = names_the_code_reads()
    assert set(CONTAINER_ENV) <= read
    named = variable_names(compose) | {
        key for service in services.values() for key in environment_of(service)
    }
    unread = {n for n in named if n.startswith("AGGREGATOR_")} - read
    assert not unread, f"set in docker-compose.yml but read nowhere in aggregator/: {unread}"
    assert "AGGREGATOR_TEST_POSTGRES_URL" not in named  # the test suite's, not the service's
    for name in APP_SERVICES:
        env = environment_of(services[name])
        assert all(env.get(key) for key in CONTAINER_ENV), f"{name} lacks {CONTAINER_ENV}"


def test_every_variable_has_a_default_but_the_database_password() -> None:
    raw = COMPOSE_FILE.read_text(encoding="utf-8")
    required = set()
    for match in _VARIABLE.finditer(raw):
        if match["escaped"]:
            continue
        if match["op"] == ":?":
            required.add(match["braced"])
            assert "--env-file dev.env" in match["arg"], f"{match[0]}: name development mode"
        else:
            assert match["op"] in (":-", "-"), f"{match[0]} has no default"
    assert required == REQUIRED
    resolved = json.dumps(interpolate_all(load_compose(), development_mode()))
    assert "${" not in resolved, "a nested or unterminated ${...} is left"


def test_the_database_password_has_no_default_outside_development_mode(
    compose: dict[str, Any],
) -> None:
    """A password anyone can read in this repository must not end up guarding a real
    database: without POSTGRES_PASSWORD and the URL, Compose refuses to start (`:?`)."""
    for missing in REQUIRED:
        given = {name: "s3cret" for name in REQUIRED - {missing}}
        with pytest.raises(AssertionError, match=rf"\${missing} is required: .*dev\.env"):
            interpolate_all(compose, given)
    own = {"POSTGRES_PASSWORD": "s3cret", DATABASE_ENV: "postgresql://a:s3cret@postgres/a"}
    resolved = interpolate_all(compose, own)
    assert environment_of(resolved["services"]["postgres"])["POSTGRES_PASSWORD"] == "s3cret"
    assert ":aggregator@" not in json.dumps(resolved), "a default password is left"
    dev = development_mode()
    assert set(dev) == REQUIRED
    assert make_url(dev[DATABASE_ENV]).password == dev["POSTGRES_PASSWORD"]
    for doc in (ROOT / "README.md", ROOT / "docs" / "operations.md"):
        assert "--env-file dev.env" in doc.read_text(encoding="utf-8"), doc


def test_the_config_is_mounted_read_only_and_is_the_one_aggregator_config_names(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES:
        service = services[name]
        config_file = environment_of(service)[CONFIG_ENV]
        mounts = [m for m in mounts_of(service) if config_file.startswith(m[1].rstrip("/") + "/")]
        assert len(mounts) == 1, f"{name}: {config_file} is in no mount"
        source, target, read_only = mounts[0]
        assert read_only
        assert source.startswith("./"), "a folder of this repository"
        assert (ROOT / source).is_dir()
        on_host = ROOT / source / Path(config_file).relative_to(target)
        settings_in(on_host)  # the file exists and is a valid config


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_image_user_and_entrypoint() -> None:
    instructions = dockerfile()
    assert docker_values("FROM") == ["python:3.11-slim"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11", "update the base image with it"
    users = docker_values("USER")
    assert users, "no USER: the service would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    keywords = [kw for kw, _ in instructions]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert "RUN" not in keywords[last_user:], "nothing after USER runs as root"
    entrypoint = json.loads(docker_values("ENTRYPOINT")[-1])
    assert entrypoint == ["aggregator"]
    assert project["scripts"]["aggregator"] == "aggregator.cli:entry"
    parse_cli(json.loads(docker_values("CMD")[-1]))
    installs = [run for run in docker_values("RUN") if "pip install" in run]
    assert installs
    assert all("--no-cache-dir" in run for run in installs)
    assert image_environment().get("PYTHONUNBUFFERED") == "1", "logs reach docker logs at once"


def test_the_image_installs_from_the_lock_file_only() -> None:
    """Pinned versions with hashes (a changed or substituted file on the index fails the
    build), then the package without resolving anything or fetching a build backend."""
    assert "requirements.lock" in copied_sources()
    dependencies, package = pip_installs()
    assert "--require-hashes" in dependencies
    assert dependencies[dependencies.index("-r") + 1] == "/src/requirements.lock"
    assert {"--no-deps", "--no-build-isolation"} <= set(package)
    assert package[-1] == "/src"


def test_every_dependency_is_pinned_with_a_hash_in_the_lock_file() -> None:
    """A dependency added to pyproject.toml without updating requirements.lock (the
    pip-compile command in docs/operations.md) fails here, not in the image build."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = locked()
    wanted = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    for spec in wanted:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{spec} is not in requirements.lock: run pip-compile again"
        assert requirement.specifier.contains(pins[name], prereleases=True), (spec, pins[name])
        for extra in requirement.extras:  # psycopg[binary], uvicorn[standard]
            for raw in importlib.metadata.requires(requirement.name) or []:
                needed = Requirement(raw)
                if needed.marker is None or not needed.marker.evaluate({"extra": extra}):
                    continue
                if needed.marker.evaluate({"extra": ""}):
                    continue  # not the extra's own
                assert canonicalize_name(needed.name) in pins, f"{spec} needs {needed}"
    assert {"psycopg-binary", "uvloop", "setuptools"} <= set(pins)


def test_every_copied_path_exists_and_reaches_the_build_context() -> None:
    sources = copied_sources()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert {"pyproject.toml", project["readme"], "aggregator"} <= set(sources)
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such path"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            is_cache = "__pycache__" in file.parts or file.suffix == ".pyc"
            assert is_in_build_context(relative) is not is_cache, relative
    for kept_out in (".git/HEAD", "tests/conftest.py", "data/aggregator.db", ".venv/bin/python"):
        assert not is_in_build_context(kept_out), kept_out


# --------------------------------------------------------------------------- topology


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def start_order(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Services in an order that starts each after everything it depends on."""
    order: list[str] = []

    def visit(name: str, seen: tuple[str, ...] = ()) -> None:
        assert name not in seen, f"dependency cycle: {[*seen, name]}"
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency, (*seen, name))
        if name not in order:
            order.append(name)

    for name in services:
        visit(name)
    return order


FEEDS = {  # path on the feed server -> fixture; seed.rss and jsonfeed11 share an item
    "/rss20.xml": "rss20.xml",
    "/atom10.xml": "atom10.xml",
    "/jsonfeed11.json": "jsonfeed11.json",
    "/seed.rss": "seed.rss",
}
ADDED_LATER = {"/rss10.rdf": "rss10.rdf"}
# Short, because a worker that starts (or reloads) a moment after another one added a
# source sees it as overdue and spreads it over min(interval, 5 min): first fetches come
# within one interval, and "once" is checked as "never twice within an interval".
INTERVAL = 20  # seconds
TICK_SLACK = 2.5  # a due source is claimed at the next 1 s tick; a request takes a moment


def source_id(path: str) -> str:
    return path[1:].replace(".", "-")


def expected_titles(feeds: Mapping[str, str]) -> dict[str, list[str]]:
    return {
        path: [
            item["title"]
            for item in json.loads((FIXTURES / f"{name}.expected.json").read_text("utf-8"))["items"]
        ]
        for path, name in feeds.items()
    }


def config_for(server: FeedServer, feeds: Mapping[str, str], title: str) -> str:
    lines = [
        "allow_networks: [127.0.0.0/8]",
        f"defaults: {{interval: {INTERVAL}s, jitter_fraction: 0, workers: 2, "
        "timeout_seconds: 5, total_timeout_seconds: 10}",
        f"categories: {{news: {{title: {title}}}}}",
        "sources:",
    ]
    for path in feeds:
        lines.append(f"  - {{id: {source_id(path)}, url: '{server.url(path)}', category: news}}")
    return "\n".join(lines) + "\n"


def serve_fixtures(server: FeedServer, feeds: Mapping[str, str]) -> None:
    for path, name in feeds.items():
        kind = "application/feed+json" if name.endswith(".json") else "application/xml"
        server.routes[path] = Route((FIXTURES / name).read_bytes(), content_type=kind)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


class Topology:
    """The compose services as plain processes: container paths live under ``root``
    (the config mount is a folder there), the web listens on ``port``."""

    def __init__(self, compose: dict[str, Any], root: Path, port: int, logs: Path) -> None:
        self.services: dict[str, dict[str, Any]] = compose["services"]
        self.root = root
        self.port = port
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []
        workdir = docker_values("WORKDIR")[-1]
        self.cwd = self.on_host(workdir)
        self.cwd.mkdir(parents=True, exist_ok=True)

    def on_host(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def argv(self, name: str) -> list[str]:
        argv = command_of(self.services[name])
        if name == "web":
            argv = replace_option(argv, "--port", str(self.port))
        return [sys.executable, "-m", "aggregator", *argv]

    def environment(self, name: str) -> dict[str, str]:
        """What the container's process sees: the image's ENV, then the service's, with
        paths inside a mount moved under ``root``; nothing AGGREGATOR_ from this shell."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
        env |= image_environment()
        targets = [target for _, target, _ in mounts_of(self.services[name])]
        for key, value in environment_of(self.services[name]).items():
            inside = any(value.startswith(t.rstrip("/") + "/") for t in targets)
            env[key] = str(self.on_host(value)) if inside else value
        return env

    def log(self, name: str) -> str:
        return "".join(
            f"--- {p.name}\n{p.read_text(encoding='utf-8', errors='replace')}"
            for p in sorted(self.logs.glob(f"{name}*.log"))
        )

    def run_once(self, name: str) -> None:
        with (self.logs / f"{name}.log").open("wb") as out:
            done = subprocess.run(
                self.argv(name),
                cwd=self.cwd,
                env=self.environment(name),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
            )
        assert done.returncode == 0, f"{name} exited {done.returncode}\n{self.log(name)}"

    def start(self, name: str, replicas: int) -> None:
        for replica in range(1, replicas + 1):
            with (self.logs / f"{name}-{replica}.log").open("wb") as out:
                process = subprocess.Popen(
                    self.argv(name),
                    cwd=self.cwd,
                    env=self.environment(name),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group, so cleanup reaches its children
                )
            self.running.append((name, process))

    def wait_healthy(self, name: str) -> None:
        """Run the service's healthcheck as written (the container's port swapped for
        ours) until it passes, within the time Compose would give it."""
        spec = self.services[name]["healthcheck"]
        argv = healthcheck_argv(self.services[name])
        _, options = parse_cli(command_of(self.services[name]))
        probe = [a.replace(f":{options['port']}/", f":{self.port}/") for a in argv]
        assert probe != argv, "the healthcheck does not name the port the service serves"
        if probe[0] == "python":
            probe[0] = sys.executable  # the image's python is the one on its PATH
        deadline = seconds(spec["start_period"]) + seconds(spec["interval"]) * spec["retries"]

        def passes() -> bool:
            self.assert_running()
            try:
                check = subprocess.run(
                    probe, capture_output=True, timeout=seconds(spec["timeout"]), check=False
                )
            except subprocess.TimeoutExpired:
                return False
            return check.returncode == 0

        assert wait_until(passes, deadline), f"{name} never became healthy\n{self.log(name)}"

    def assert_running(self) -> None:
        for name, process in self.running:
            assert process.poll() is None, f"{name} exited {process.returncode}\n{self.log(name)}"

    def up(self, replicas: Mapping[str, int]) -> None:
        """Start every service in dependency order, each only when Compose would: its
        dependencies started, healthy, or exited 0, as its depends_on says."""
        reached = {"postgres": {"service_started", "service_healthy"}}  # the test's server
        for name in start_order(self.services):
            if name == "postgres":
                continue
            for dependency, spec in self.services[name].get("depends_on", {}).items():
                assert spec["condition"] in reached[dependency], (name, dependency, spec)
            if self.services[name].get("restart") == "no":  # one-shot
                self.run_once(name)
                reached[name] = {"service_started", "service_completed_successfully"}
                continue
            self.start(name, replicas.get(name, 1))
            reached[name] = {"service_started"}
            if "healthcheck" in self.services[name]:
                self.wait_healthy(name)
                reached[name].add("service_healthy")

    def stop(self) -> None:
        """SIGTERM to each process, as `docker compose stop` sends it; each must exit 0."""
        for _, process in self.running:
            process.send_signal(signal.SIGTERM)
        for name, process in self.running:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} ignored SIGTERM for 60 s\n{self.log(name)}")
            assert process.returncode == 0, f"{name} exited {process.returncode}\n{self.log(name)}"

    def kill_leftovers(self) -> None:
        for _, process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def throwaway_database(postgres_admin_url: str) -> Iterator[str]:
    url = fresh_postgres_database(postgres_admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(postgres_admin_url, url)


@pytest.mark.postgres
@pytest.mark.slow
def test_the_compose_topology_runs_as_plain_processes(
    throwaway_database: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    compose = interpolate_all(
        load_compose(), {**development_mode(), DATABASE_ENV: throwaway_database}
    )
    all_feeds = {**FEEDS, **ADDED_LATER}
    logs = tmp_path / "logs"
    logs.mkdir()
    topology = Topology(compose, tmp_path / "container", free_port(), logs)
    config_file = Path(environment_of(compose["services"]["worker"])[CONFIG_ENV])
    config_on_host = topology.on_host(str(config_file))
    config_on_host.parent.mkdir(parents=True)  # the mounted folder
    serve_fixtures(feed_server, all_feeds)
    config_on_host.write_text(config_for(feed_server, FEEDS, "新闻"), encoding="utf-8")
    web = f"http://127.0.0.1:{topology.port}"

    def sources() -> dict[str, dict[str, Any]]:
        return {s["id"]: s for s in json.loads(get(f"{web}/api/sources"))}

    def all_fetched(paths: Sequence[str]) -> bool:
        topology.assert_running()
        listed = sources()
        ids = [source_id(p) for p in paths]
        return all(feed_server.requests_to(p) for p in paths) and all(
            i in listed and listed[i]["health"] == "ok" for i in ids
        )

    try:
        topology.up({"worker": 2})  # as `docker compose up --scale worker=2`
        assert wait_until(lambda: all_fetched(list(FEEDS)), INTERVAL + 10), topology.log("")

        # what the workers stored, published by the web service
        titles = expected_titles(FEEDS)
        feed = ET.fromstring(get(f"{web}/feeds/all.xml"))
        published = [t.text for t in feed.iter("title")]
        for path, wanted in titles.items():
            assert set(wanted) <= set(published), path
        listed = sources()
        for path, wanted in titles.items():
            source = listed[source_id(path)]
            assert source["http_status"] in (200, 304), source  # 304: fetched again
            assert source["items"] == len(wanted), source

        # a config edit reaches every process without a restart: a worker fetches the new
        # source, the web server shows the new category title
        edited = config_on_host.with_suffix(".new")
        edited.write_text(config_for(feed_server, all_feeds, "财经新闻"), encoding="utf-8")
        os.replace(edited, config_on_host)  # as an editor saves: a new file, renamed

        def retitled() -> bool:  # several in a row: each of the two server processes
            return all(
                ET.fromstring(get(f"{web}/feeds/news.xml")).findtext("channel/title") == "财经新闻"
                for _ in range(8)
            )

        assert wait_until(lambda: all_fetched(list(ADDED_LATER)), INTERVAL + 10), topology.log("")
        assert wait_until(retitled, 30), topology.log("web")

        time.sleep(TICK_SLACK)  # room for a duplicate fetch to show up
        topology.assert_running()
        topology.stop()
    finally:
        topology.kill_leftovers()

    engine = create_engine(normalize_url(throwaway_database))
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            stored = tuple(
                conn.execute(text("SELECT count(*), count(DISTINCT stable_id) FROM items")).one()
            )
            fetched: dict[str, int] = dict(
                conn.execute(text("SELECT source_id, count(*) FROM fetches GROUP BY 1")).all()
            )
            held = conn.execute(
                text("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL")
            ).scalar()
    finally:
        engine.dispose()
    assert version == HEAD_REVISION  # the migrate service made the schema
    assert held == 0, "SIGTERM left a lease held"
    distinct = {t for wanted in expected_titles(all_feeds).values() for t in wanted}
    assert stored == (len(distinct), len(distinct)), "an item stored twice"
    # each source fetched by one worker at a time: never twice within an interval, and
    # every request the feed server saw is one recorded fetch
    requested = {source_id(path): feed_server.requests_to(path) for path in all_feeds}
    assert fetched == {sid: len(found) for sid, found in requested.items()}
    for sid, found in requested.items():
        starts = [r.started for r in found]
        spacing = [b - a for a, b in itertools.pairwise(starts)]
        assert all(gap >= INTERVAL - TICK_SLACK for gap in spacing), (sid, spacing)
