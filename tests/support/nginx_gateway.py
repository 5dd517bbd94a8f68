"""nginx in front of the registry: TLS, client certificates, a bearer token.

Production registries sit behind a gateway that terminates TLS, requires a
client certificate and checks a bearer token, then calls the registry with
its own service credentials. Apicurio cannot require client certificates
itself (this build fixes `quarkus.http.ssl.client-auth` to NONE), so the
tests put a real gateway in front of it: nginx (Debian's package) with
`ssl_verify_client on`, a `map` that admits only `Authorization: Bearer
<token>` (401 with a JSON error otherwise, as a registry would answer), and
`proxy_pass` to Apicurio with the registry user's basic auth added.

The binary: `nginx` on PATH when installed, else Debian's `nginx` package
fetched with `apt-get download` into the download cache and unpacked with
`dpkg-deb -x` (once, under a lock). Installing the package would start the
system service on port 80 (its postinst does) on a shared machine; the
unpacked binary only ever runs with the configuration written here, bound
to 127.0.0.1 on a free port, as root with workers as `nobody`.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from pathlib import Path

try:
    from .cache import cache_dir
    from .maven import locked
    from .processes import stop_gracefully
except ImportError:  # run as a script
    from cache import cache_dir  # type: ignore[no-redef,import-not-found,unused-ignore]
    from maven import locked  # type: ignore[no-redef,import-not-found,unused-ignore]
    from processes import stop_gracefully  # type: ignore[no-redef,import-not-found,unused-ignore]


class GatewayError(RuntimeError):
    """nginx could not be fetched or started (its words are in the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise GatewayError(f"{' '.join(args)} failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")


def nginx_binary() -> Path:
    """The nginx executable (see the module docstring)."""
    found = shutil.which("nginx")
    if found:
        return Path(found)
    root = cache_dir("nginx")
    exe = root / "root" / "usr" / "sbin" / "nginx"
    if exe.exists():
        return exe
    with locked(root):
        if exe.exists():
            return exe
        debs = root / "debs"
        shutil.rmtree(debs, ignore_errors=True)
        debs.mkdir()
        debs.chmod(0o777)  # apt downloads as its sandbox user `_apt`
        try:
            _run("apt-get", "download", "-q", "nginx", cwd=debs)
        except GatewayError:  # a fresh machine may have no package lists yet
            _run("apt-get", "update", "-qq")
            _run("apt-get", "download", "-q", "nginx", cwd=debs)
        (deb,) = debs.glob("nginx_*.deb")
        work = root / ".unpack"
        shutil.rmtree(work, ignore_errors=True)
        _run("dpkg-deb", "-x", str(deb), str(work))
        shutil.rmtree(root / "root", ignore_errors=True)
        work.rename(root / "root")
    return exe


CONF = """daemon off;
worker_processes 1;
user nobody nogroup;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  map $http_authorization $bearer_ok {{
    default 0;
    "Bearer {token}" 1;
  }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_client_certificate {client_ca};
    ssl_verify_client on;
    location / {{
      default_type application/vnd.schemaregistry.v1+json;
      if ($bearer_ok = 0) {{
        return 401 '{{"error_code":40101,"message":"gateway: bearer token missing or refused"}}';
      }}
      proxy_set_header Authorization "Basic {upstream_auth}";
      proxy_set_header Host $host;
      proxy_pass http://127.0.0.1:{upstream_port};
    }}
  }}
}}
"""


class RegistryGateway:
    """One nginx in front of an http registry on `upstream_port`."""

    def __init__(self, directory: Path, *, upstream_port: int, upstream_user: str,
                 upstream_password: str, cert: Path, key: Path, client_ca: Path,
                 token: str, path: str = "/apis/ccompat/v7") -> None:
        self.directory = Path(directory)
        self.port = free_port()
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None
        auth = base64.b64encode(f"{upstream_user}:{upstream_password}".encode()).decode()
        self._conf = CONF.format(dir=self.directory, token=token, port=self.port, cert=cert,
                                 key=key, client_ca=client_ca, upstream_auth=auth,
                                 upstream_port=upstream_port)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"

    def start(self, timeout: float = 20.0) -> RegistryGateway:
        exe = nginx_binary()
        tmp = self.directory / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o777)  # the workers (nobody) buffer proxied bodies there
        conf = self.directory / "nginx.conf"
        conf.write_text(self._conf)
        # -e: the log of start-up before error_log is read (the package's default is stderr)
        self.proc = subprocess.Popen([str(exe), "-p", str(self.directory), "-c", str(conf),
                                      "-e", str(self.directory / "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise GatewayError(f"nginx exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise GatewayError(f"nginx not listening in {timeout}s: {self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        try:
            return (self.directory / "error.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_gracefully(self.proc, 15)  # the master stops its worker
        self.proc = None

    def __enter__(self) -> RegistryGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
