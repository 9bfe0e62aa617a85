"""`rnnbench server`: an MLflow tracking server for jobs to share, which lets in only named users when it is
reachable from other machines (MLflow's own basic-auth app, with workspaces so that a READ user cannot
create); `rnnbench server users add`: a user and their permission; `rnnbench ui`: the UI on a local store."""
from __future__ import annotations

import os
import secrets
import stat
import sys
from pathlib import Path

from suite.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
PERMISSIONS = {"READ": (("experiment", "READ"), ("registered_model", "READ")),  # browse the UI and build reports
               "EDIT": (("experiment", "EDIT"), ("registered_model", "EDIT"), ("workspace", "USE")),  # run jobs
               "MANAGE": (("experiment", "MANAGE"), ("registered_model", "MANAGE"), ("workspace", "MANAGE"))}
OPT_OUT = "--no-auth-i-accept-that-anyone-on-the-network-can-change-every-run"
REFUSED_PASSWORD = "password1234"  # the admin password older MLflow shipped in basic_auth.ini: MLflow refuses it
# (mlflow.server.auth._LEGACY_DEFAULT_ADMIN_PASSWORD; tests/test_hostile_files.py keeps the two equal)


def add_parser(sub, parents):
    """The `server` subcommand's flags, and its `users add` subcommand."""
    from suite.cliargs import count

    p = sub.add_parser("server", parents=parents, help="an MLflow tracking server on a store (auth beyond loopback)")
    p.add_argument("--backend", help="e.g. postgresql://USER:PASSWORD@HOST/mlflow (default: sqlite:///mlflow.db)")
    p.add_argument("--artifacts", default="mlartifacts", help="artifact folder the server keeps")
    p.add_argument("--workers", type=count, default=4, help="server processes (default 4)")
    p.add_argument("--auth", action="store_true", help="named users only, on loopback too (always beyond it)")
    p.add_argument(OPT_OUT, dest="no_auth", action="store_true",
                   help="serve beyond this machine WITHOUT authentication (not recommended)")
    p.add_argument("--auth-db", default="sqlite:///mlflow-auth.db", help="where users live (default: that file)")
    p.add_argument("--admin-password-file", help="a file only you can read (else $RNNBENCH_ADMIN_PASSWORD)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM) ...")
    p.add_argument("--tls-key", help="... and this private key")
    users = p.add_subparsers(dest="server_command").add_parser("users", help="accounts on an auth server")
    add = users.add_subparsers(dest="users_command", required=True).add_parser("add", parents=parents[:1],
                                                                               help="a user and permission")
    add.add_argument("name")
    add.add_argument("--permission", required=True, choices=tuple(PERMISSIONS))
    add.add_argument("--password-file", help="their password (else $RNNBENCH_USER_PASSWORD, else asked for)")


def command(a) -> int:
    if getattr(a, "server_command", None) == "users":
        from suite.stores import tracking_uri

        return add_user(tracking_uri(getattr(a, "tracking_uri", None)), a.name, a.permission, a.password_file)
    return server(a.backend, a.artifacts, a.host, a.port, a.workers, a.auth, a.no_auth, a.auth_db,
                  a.admin_password_file, a.tls_cert, a.tls_key)


def server(backend, artifacts, host, port, workers, auth, no_auth, auth_db, password_file, cert, key):
    from suite.stores import DEFAULT_URI, redact

    backend = backend or DEFAULT_URI
    if "://" not in backend:
        raise UserError(f"--backend: expected a database URI such as postgresql://USER:PASSWORD@HOST/mlflow "
                        f"(got {backend})")
    if bool(cert) != bool(key) or any(f and not Path(f).is_file() for f in (cert, key)):
        raise UserError("--tls-cert and --tls-key: give both, as files (README › Running on a cluster › TLS)")
    exposed = host not in LOOPBACK
    if exposed and no_auth:
        print(f"WARNING: {host} serves every run, experiment and model to anyone who can reach it, who can change or "
              "delete them, and nothing records who did", file=sys.stderr)
    auth = auth or (exposed and not no_auth)
    env, args = {"MLFLOW_BACKEND_STORE_URI": backend}, []  # the backend in the environment: `ps` shows argv
    if auth:
        env |= auth_environment(password_file, auth_db, Path(artifacts))
        args += ["--app-name", "basic-auth", "--enable-workspaces"]
    if cert:
        args += ["--uvicorn-opts", f"--ssl-certfile {Path(cert).resolve()} --ssl-keyfile {Path(key).resolve()}"]
    Path(artifacts).mkdir(parents=True, exist_ok=True)
    scheme = "https" if cert else "http"
    print(f"MLflow tracking server on {scheme}://{host}:{port} · backend {redact(backend)} · artifacts "
          f"{Path(artifacts).resolve()} · {'named users only' if auth else 'no authentication'}\n"
          f"Point jobs at it: export MLFLOW_TRACKING_URI={scheme}://{host}:{port}"
          + (" MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=..." if auth else ""), flush=True)
    os.environ.update(env)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # seven GenAI job workers nobody here uses
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "server", "--workers", str(workers),
                               "--artifacts-destination", str(Path(artifacts).resolve()),
                               "--host", host, "--port", str(port), *args])


def auth_environment(password_file: str | None, auth_db: str, artifacts: Path) -> dict:
    """What MLflow's basic-auth app needs, none of it on a command line: the admin's password (set on first
    start; MLflow has no default one), checked before anything is written, then a config file only we can read
    and a persistent CSRF secret, both in the server's own folder (beside its artifacts): one of each, whatever
    the number of starts."""
    password = admin_password(password_file)
    state = artifacts.resolve().parent
    key = server_secret(state / ".mlflow-server-secret")
    config = state / ".mlflow-auth.ini"
    write_private(config, "[mlflow]\ndefault_permission = NO_PERMISSIONS\nadmin_username = admin\n"
                  f"database_uri = {auth_db}\nauthorization_function = "
                  "mlflow.server.auth:authenticate_request_basic_auth\n")
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": key}


def admin_password(password_file: str | None) -> str:
    """The admin's password, refused in one line where MLflow would refuse it (after writing its stores)."""
    password = read_secret(password_file, "RNNBENCH_ADMIN_PASSWORD", "--admin-password-file")
    if password is None:
        raise UserError("server: named users need an admin password: export RNNBENCH_ADMIN_PASSWORD=... (12 characters "
                        "or more) or pass --admin-password-file FILE (readable by you only)")
    if len(password) < 12:
        raise UserError("server: the admin password needs 12 characters or more")
    if password == REFUSED_PASSWORD:
        raise UserError("server: the admin password is the default older MLflow versions shipped, which MLflow "
                        "refuses; set RNNBENCH_ADMIN_PASSWORD (or --admin-password-file) to another")
    return password


def server_secret(path: Path) -> str:
    """The CSRF secret the server keeps in `path` (written on its first start), read back as a password file is."""
    if not path.exists():
        write_private(path, secrets.token_hex(32))
    secret = read_private(path, "server")
    if secret is None:
        raise UserError(f"server: {path} is empty; delete it and start again (a new secret is written)")
    return secret


def write_private(path: Path, text: str):
    """`text` into `path`, readable by its owner only (a file already there too); never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)
        f.write(text)


def read_secret(path: str | None, variable: str, flag: str) -> str | None:
    """A password from a file only its owner can read, else from the environment; never from a command line."""
    if path:
        return read_private(Path(path), flag)
    return os.environ.get(variable) or None


def read_private(path: Path, flag: str) -> str | None:
    """A secret file's text (None when it is empty), refused unless it is a file of yours only you can read."""
    if not path.is_file():
        raise UserError(f"{flag}: {path} not found")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO) or path.stat().st_uid != os.getuid():
        raise UserError(f"{flag}: {path} must be yours and readable by you only (chmod 600 {path})")
    try:
        return path.read_bytes().decode("utf-8").strip() or None
    except UnicodeDecodeError:
        raise UserError(f"{flag}: {path} is not UTF-8 text; is it the file you meant?") from None


def add_user(uri: str, name: str, permission: str, password_file: str | None) -> int:
    """Create `name` on the auth server and give it a role with `permission` on every experiment and model.
    The admin's credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD, as for any MLflow client."""
    import getpass

    from suite.stores import check_store

    if not uri.startswith(("http://", "https://")):
        raise UserError(f"--tracking-uri: users live on a tracking server, not in {uri}")
    check_store(uri)
    password = read_secret(password_file, "RNNBENCH_USER_PASSWORD", "--password-file")
    if password is None and sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
    if not password or len(password) < 12:
        raise UserError("users add: a password of 12 characters or more: export RNNBENCH_USER_PASSWORD=..., "
                        "--password-file FILE, or type it when asked")
    client = auth_client(uri)
    client.create_user(name, password)
    role = _role(client, permission)
    client.assign_role(name, role.id)
    print(f"user {name}: {permission} on every experiment and registered model (role {role.name})")
    return 0


def auth_client(uri: str):
    """MLflow's AuthServiceClient, imported without the warning its server package gives on import (it uses
    Starlette's deprecated WSGI middleware: mlflow.server.fastapi_app), which a user can do nothing about."""
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=StarletteDeprecationWarning, module=r"mlflow\.server\.fastapi_app")
        from mlflow.server.auth.client import AuthServiceClient
    return AuthServiceClient(uri)


def _role(client, permission: str):
    """The role `rnnbench-<permission>` in the default workspace, created with its grants the first time."""
    name = f"rnnbench-{permission.lower()}"
    for role in client.list_roles("default"):
        if role.name == name:
            return role
    role = client.create_role("default", name, description=f"rnnbench: {permission} on every experiment and model")
    for resource, grant in PERMISSIONS[permission]:
        client.add_role_permission(role.id, resource, "*", grant)
    return role


def ui(uri: str, host: str, port: int):
    from suite.stores import redact

    if uri.startswith(("http://", "https://")):
        raise UserError(f"--tracking-uri: {redact(uri)} is a server already; open it in a browser")
    if host not in LOOPBACK:
        raise UserError(f"--host {host}: the UI stays on this machine; from elsewhere use an SSH tunnel "
                        "(ssh -L 5000:127.0.0.1:5000 HOST) or `rnnbench server`, which lets in named users only")
    print(f"MLflow UI on http://{host}:{port}/#/experiments?workflowType=machine_learning (store {redact(uri)}); "
          "Ctrl-C stops it", flush=True)
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", host, "--port", str(port)])
