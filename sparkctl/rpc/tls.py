"""Optional TLS under every sparkctl rpc connection (the ``spark.ssl.*`` settings).

When ``spark.ssl.enabled`` is true, :func:`~sparkctl.rpc.connection.connect` and
:class:`~sparkctl.rpc.server.Server` wrap each TCP socket in TLS *before* the
shared-secret handshake of :mod:`sparkctl.rpc.auth`, which then runs inside TLS::

    client (connect)                                  server (Server)
    TCP connect ───────────────────────────────────▶ accept
    TLS handshake  ◀═══════════ certificates ══════▶ TLS handshake      spark.ssl.enabled
    HMAC challenge / answer / welcome ◀═ in TLS ══▶ ...                 always
    pickled message frames ◀════════════ in TLS ══▶ ...

TLS gives confidentiality and integrity on the wire; the secret still decides who may
talk (authorization).  With ``spark.ssl.caFile`` both sides present a certificate and
verify the other's against that CA (mutual TLS), which also stops a man in the middle
from relaying the HMAC handshake.  Without a CA file the traffic is encrypted against
eavesdroppers but certificates are not checked.  Host names are not checked either: any
certificate the cluster's CA signed is accepted from any host of the cluster.

Settings, each looked up in the environment first, then in
``$SPARKCTL_CONF_DIR/sparkctl-defaults.conf`` (relative paths there are relative to the
conf dir):

=====================  ==========================  =====================================
setting                environment override        meaning
=====================  ==========================  =====================================
spark.ssl.enabled      SPARKCTL_SSL_ENABLED        wrap every rpc connection in TLS
spark.ssl.certFile     SPARKCTL_SSL_CERT_FILE      this process's certificate chain (PEM)
spark.ssl.keyFile      SPARKCTL_SSL_KEY_FILE       its private key (PEM, unencrypted)
spark.ssl.caFile       SPARKCTL_SSL_CA_FILE        CA bundle peers are verified against
=====================  ==========================  =====================================

Every process of a cluster must agree on ``spark.ssl.enabled``.  A process that found TLS
enabled in its conf file exports the effective settings as ``SPARKCTL_SSL_*``, so the
processes it starts (executors, a ``local-cluster``'s private master and workers, which
get a conf dir of their own) speak TLS too.

The contexts are built once per configuration: the cost of TLS is paid per connection
(the handshake) and per byte (encryption), and none of it when TLS is off.
"""
from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sparkctl.errors import AuthenticationError, ConfigError

__all__ = [
    "TLSConfig",
    "ENV_VARS",
    "configured",
    "wrap_client",
    "start_server_tls",
    "finish_server_tls",
    "describe_tls_error",
    "explain_handshake_failure",
]

#: setting key -> environment variable that overrides it.
ENV_VARS = {
    "spark.ssl.enabled": "SPARKCTL_SSL_ENABLED",
    "spark.ssl.certFile": "SPARKCTL_SSL_CERT_FILE",
    "spark.ssl.keyFile": "SPARKCTL_SSL_KEY_FILE",
    "spark.ssl.caFile": "SPARKCTL_SSL_CA_FILE",
}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


@dataclass(frozen=True)
class TLSConfig:
    """Where this process's certificate, key and trusted CA are (PEM files).

    ``cert_file``/``key_file`` are required to serve; a client presents them when given
    (a server with a CA file requires it).  ``ca_file`` switches verification of the peer
    on, in both directions.
    """

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def server_context(self) -> ssl.SSLContext:
        """The context a :class:`Server` wraps accepted sockets with (built once)."""
        return self._context("server")

    def client_context(self) -> ssl.SSLContext:
        """The context :func:`connect` wraps its socket with (built once)."""
        return self._context("client")

    def _context(self, side: str) -> ssl.SSLContext:
        ctx = self._contexts.get(side)
        if ctx is None:
            with self._lock:
                ctx = self._contexts.get(side)
                if ctx is None:
                    ctx = self._build(side)
                    self._contexts[side] = ctx
        return ctx

    def _build(self, side: str) -> ssl.SSLContext:
        if side == "server":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if not (self.cert_file and self.key_file):
                raise ConfigError("spark.ssl.enabled is true but spark.ssl.certFile and spark.ssl.keyFile are not "
                                  "both set: a process that listens needs a certificate and its key")
            # Our peers never resume sessions; without tickets the server sends nothing
            # after the handshake that a reader could mistake for application data.
            ctx.num_tickets = 0
            ctx.options |= ssl.OP_NO_TICKET
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # Peers are addressed by IP as often as by name, and every certificate comes
            # from the cluster's own CA: the CA, not the name, is what is checked.
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # A connection is read by one thread while others write to it: nothing may make
        # OpenSSL's reads and writes wait on each other mid-stream.
        ctx.options |= ssl.OP_NO_RENEGOTIATION
        if self.cert_file or self.key_file:
            if not (self.cert_file and self.key_file):
                raise ConfigError("spark.ssl.certFile and spark.ssl.keyFile must be set together")
            cert, key = self.cert_file, self.key_file
            _load(lambda: ctx.load_cert_chain(cert, key),
                  f"cannot load spark.ssl.certFile={cert} with spark.ssl.keyFile={key}",
                  {"spark.ssl.certFile": cert, "spark.ssl.keyFile": key})
        if self.ca_file:
            ca = self.ca_file
            _load(lambda: ctx.load_verify_locations(cafile=ca), f"cannot load spark.ssl.caFile={ca}",
                  {"spark.ssl.caFile": ca})
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def _load(action: Callable[[], object], what: str, files: dict[str, str]) -> None:
    for setting, path in files.items():
        if not os.path.isfile(path):
            raise ConfigError(f"{setting}={path} does not exist (or is not a file)")
    try:
        action()
    except (ssl.SSLError, OSError) as e:
        reason = getattr(e, "reason", None) or e.strerror or str(e)
        if "PEM lib" in reason:
            reason = "not a PEM file of the right kind (certificate, key or CA)"
        raise ConfigError(f"{what}: {reason}") from None


# ---------------------------------------------------------------- configuration
_cache_lock = threading.Lock()
_cache: tuple[object, TLSConfig | None] | None = None


def _cache_key() -> tuple[object, ...]:
    from sparkctl.conf import conf_dir

    return (conf_dir(),) + tuple(os.environ.get(v) for v in ENV_VARS.values())


def configured() -> TLSConfig | None:
    """This process's TLS configuration, or None when TLS is off.

    Resolved from the environment and the conf dir's defaults file, and remembered for as
    long as ``SPARKCTL_CONF_DIR`` and the ``SPARKCTL_SSL_*`` variables stay the same (a
    changed file takes effect on restart).  Raises :class:`ConfigError` on a bad value.
    """
    global _cache
    key = _cache_key()
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    with _cache_lock:
        config, from_file = _resolve()
        if config is not None and from_file:
            _export(config)
            key = _cache_key()
        _cache = (key, config)
    return config


def _resolve() -> tuple[TLSConfig | None, bool]:
    """``(config or None, whether any value came from the conf file)``."""
    from sparkctl.conf import conf_dir, load_defaults_file

    directory = conf_dir()
    file_values: dict[str, str] | None = None
    values: dict[str, str | None] = {}
    from_file = False
    for key, var in ENV_VARS.items():
        env = os.environ.get(var)
        if env is not None and env.strip():
            values[key] = env.strip()
            continue
        if file_values is None:
            file_values = load_defaults_file()
        raw = file_values.get(key)
        if raw is not None and raw.strip():
            from_file = True
            value = raw.strip()
            if key != "spark.ssl.enabled":
                value = os.path.join(directory, os.path.expanduser(value))
            values[key] = value
        else:
            values[key] = None
    enabled = (values["spark.ssl.enabled"] or "").lower()
    if enabled not in _TRUE + _FALSE:
        # the file's value was checked as the file was read: this one is the environment's
        raise ConfigError(f"{ENV_VARS['spark.ssl.enabled']}: spark.ssl.enabled must be true or false, "
                          f"not {values['spark.ssl.enabled']!r}")
    if enabled in _FALSE:
        return None, False

    def path(key: str) -> str | None:
        value = values[key]
        return os.path.abspath(os.path.expanduser(value)) if value else None

    return TLSConfig(path("spark.ssl.certFile"), path("spark.ssl.keyFile"), path("spark.ssl.caFile")), from_file


def _export(config: TLSConfig) -> None:
    """Hand the effective settings down to the processes this one starts."""
    os.environ[ENV_VARS["spark.ssl.enabled"]] = "true"
    for key, value in (("spark.ssl.certFile", config.cert_file), ("spark.ssl.keyFile", config.key_file),
                       ("spark.ssl.caFile", config.ca_file)):
        if value:
            os.environ[ENV_VARS[key]] = value


# ---------------------------------------------------------------- wrapping sockets
_MISMATCH_HINT = "is TLS (spark.ssl.enabled) on for both sides?"


def wrap_client(sock: socket.socket, config: TLSConfig, where: str, host: str, timeout: float) -> ssl.SSLSocket:
    """TLS client handshake on a connected *sock* within *timeout* seconds.

    Returns the TLS socket (the plain one is detached into it).  Raises
    :class:`AuthenticationError` with the reason in words; the caller closes *sock*.
    """
    ctx = config.client_context()
    sock.settimeout(max(timeout, 0.001))
    tls = ctx.wrap_socket(sock, server_side=False, do_handshake_on_connect=False, server_hostname=host or None)
    try:
        tls.do_handshake()  # CPython bounds the whole handshake by the socket timeout
    except Exception as e:
        tls.close()
        raise AuthenticationError(f"TLS handshake with {where} failed: {describe_tls_error(e, 'server')}") from None
    except BaseException:
        tls.close()
        raise
    return tls


def start_server_tls(sock: socket.socket, config: TLSConfig) -> ssl.SSLSocket:
    """Wrap *sock* for the server side without running the handshake yet.

    :class:`Server` registers the returned socket (the plain one is detached into it)
    before calling :func:`finish_server_tls`, so that ``stop()`` can close it meanwhile.
    """
    return config.server_context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def finish_server_tls(tls: ssl.SSLSocket, peer: str, timeout: float) -> None:
    """The server side of the TLS handshake, bounded by *timeout* seconds."""
    try:
        tls.settimeout(max(timeout, 0.001))
        tls.do_handshake()
    except Exception as e:
        raise AuthenticationError(f"peer {peer} failed the TLS handshake: {describe_tls_error(e, 'client')}") from None


#: TLS alerts a peer sends when it refuses our certificate, in words.
_ALERTS = {
    "CERTIFICATE_REQUIRED": "the peer requires a certificate from us: set spark.ssl.certFile and spark.ssl.keyFile",
    "UNKNOWN_CA": "the peer does not trust our certificate: it must be signed by the peer's spark.ssl.caFile",
    "BAD_CERTIFICATE": "the peer refused our certificate (spark.ssl.certFile)",
    "CERTIFICATE_UNKNOWN": "the peer refused our certificate (spark.ssl.certFile)",
    "CERTIFICATE_EXPIRED": "the peer says our certificate has expired (spark.ssl.certFile)",
}


def explain_handshake_failure(e: AuthenticationError) -> AuthenticationError:
    """*e* from the shared-secret handshake inside TLS, with the meaning of a TLS alert in it.

    With TLS 1.3 a server that refuses the client's certificate says so only after the
    client finished its side of the TLS handshake, so the client hears it as a failed
    read in the shared-secret handshake.
    """
    text = str(e)
    for alert, meaning in _ALERTS.items():
        if alert in text:
            return AuthenticationError(f"{text} ({meaning})")
    return e


def describe_tls_error(e: BaseException, other: str) -> str:
    """One line on why a TLS handshake failed; *other* is the peer's role."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"the {other}'s certificate is not trusted: {e.verify_message} (check spark.ssl.caFile on both sides)"
    if isinstance(e, TimeoutError):
        return f"no TLS handshake from the {other} in time ({_MISMATCH_HINT})"
    if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError, EOFError)):
        return f"the {other} closed the connection ({_MISMATCH_HINT})"
    if isinstance(e, ssl.SSLError):
        reason = e.reason or str(e)
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return (f"the {other} presented no certificate, and spark.ssl.caFile here requires one "
                    f"(set spark.ssl.certFile and spark.ssl.keyFile on the {other})")
        for alert, meaning in _ALERTS.items():
            if alert in reason:
                return f"{meaning} ({reason})"
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "UNKNOWN_PROTOCOL",
                      "PACKET_LENGTH_TOO_LONG"):
            return f"the {other} does not speak TLS ({reason}; {_MISMATCH_HINT})"
        return f"{reason} ({e.library or 'ssl'})" if e.library else str(reason)
    if isinstance(e, OSError):
        return f"{e.strerror or e}"
    return f"{type(e).__name__}: {e}"
