"""warden: the Python side of a Warden plugin, the counterpart of the Rust
SDK's surface: a `Plugin` base class, `Report`/`Metric`/`Finding`, and a
`Context` with blocking HTTP (wasi:http), typed state and logging.

Written by `warden new --lang python`; the same file in every Python
plugin of one Warden version. `export(App)` turns a `Plugin` subclass into
the `WitWorld` class componentize-py looks for. Outside a component (your
unit tests) nothing here touches the host: `warden_testing.FakeHost`
stands in for it.

Errors: raise `ConfigError("field: why")` from `validate`, and
`PluginError("why")` (or let `HttpError` through) from `run`: both are
reported by name. Any other exception is a crash; the agent reports its
last line (`ValueError: ...`) and keeps the traceback with the run.
"""

import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

# The host's modules exist only inside a component, and componentize-py
# keeps only the modules imported when it builds it: import them here,
# not in a function.
try:
    import wit_world
    from componentize_py_types import Err
    from wit_world.imports import environment as _env
    from wit_world.imports import host as _host
    from wit_world.imports import outgoing_handler as _outgoing
    from wit_world.imports import streams as _streams
    from wit_world.imports import wasi_http_types as _http
    from wit_world.imports import warden_plugin_types as _t
except ImportError:
    wit_world = None

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
CAPABILITIES = ("http", "filesystem", "environment", "state")


class ConfigError(Exception):
    """`validate`'s refusal: the message names the field (`url: ...`)."""


class PluginError(Exception):
    """A run's own failure: reported as `unknown` with this message."""


class HttpError(PluginError):
    """A request that got no response: refused by the check's grants, a
    connection error, a timeout."""


@dataclass
class Metric:
    name: str
    value: float
    unit: str = ""
    labels: Dict[str, str] = field(default_factory=dict)


@dataclass
class Finding:
    fingerprint: str
    rule: str
    message: str
    severity: str = "medium"  # info, low, medium, high, critical
    location: Optional[str] = None
    attributes: Dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    status: str
    summary: str
    metrics: List[Metric] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)
    outputs: Dict[str, str] = field(default_factory=dict)

    def metric(self, name, value, unit="", **labels):
        self.metrics.append(Metric(name, float(value), unit, {k: str(v) for k, v in labels.items()}))
        return self

    def finding(self, fingerprint, rule, message, severity="medium", location=None, **attributes):
        self.findings.append(Finding(fingerprint, rule, message, severity, location,
                                     {k: str(v) for k, v in attributes.items()}))
        return self

    def output(self, key, value):
        self.outputs[key] = str(value)
        return self


@dataclass
class Action:
    """What a run started by an `[[action]]` (a runbook's remedy) is told
    of itself: `ctx.action`, None for a check's run. Send
    `idempotency_key` as the `Idempotency-Key` of the request that changes
    something; when `dry_run`, change nothing and report what you would do."""

    name: str
    idempotency_key: str
    dry_run: bool
    trigger_check: str
    trigger_status: str
    trigger_summary: str


@dataclass
class Response:
    status: int
    headers: Dict[str, List[str]]
    body: bytes
    elapsed_ms: float

    @property
    def ok(self):
        return 200 <= self.status < 300

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None


class Http:
    """Blocking HTTP through the check's grants (`allow.hosts`)."""

    def __init__(self, host):
        self._host = host

    def get(self, url, headers=None, timeout_ms=10_000):
        return self.request("GET", url, headers, None, timeout_ms)

    def post_json(self, url, value, headers=None, timeout_ms=10_000):
        h = {"content-type": "application/json", **(headers or {})}
        return self.request("POST", url, h, json.dumps(value).encode(), timeout_ms)

    def request(self, method, url, headers=None, body=None, timeout_ms=10_000):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"{url}: not an http(s) URL")
        return self._host.http(method.upper(), url, dict(headers or {}), body, timeout_ms)


class State:
    """The check's state, kept by the agent across runs: JSON values."""

    def __init__(self, host):
        self._host = host

    def get(self, key, default=None):
        raw = self._host.state_get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key, value):
        self._host.state_set(key, json.dumps(value))

    def delete(self, key):
        self._host.state_delete(key)


class Context:
    """Everything a run has: its check, config, HTTP, state, log, env."""

    def __init__(self, host, check, config, scheduled_unix_ms=0, attempt=1, deadline_unix_ms=0, action=None):
        self.check = check
        self.config = config
        self.scheduled_unix_ms = scheduled_unix_ms
        self.attempt = attempt
        self.deadline_unix_ms = deadline_unix_ms
        self.action: Optional[Action] = action
        self.http = Http(host)
        self.state = State(host)
        self._host = host

    def log(self, level, message, **fields):
        self._host.log(level, message, {k: str(v) for k, v in fields.items()})

    def env(self, name):
        return self._host.env(name)


class Plugin:
    """Subclass it: set the class attributes, write `validate` and `run`."""

    name = "plugin"
    version = "0.1.0"
    description = ""
    default_schedule = None
    capabilities: List[str] = []
    config_schema: Dict[str, Any] = {"type": "object"}

    def validate(self, config: dict) -> None:
        pass

    def run(self, ctx: Context) -> Report:
        raise NotImplementedError


def parse_config(plugin, text):
    """The config as a dict, validated by `plugin`; `ConfigError` if not."""
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise ConfigError(f"config is not JSON: {e}")
    if not isinstance(config, dict):
        raise ConfigError("config must be a JSON object")
    plugin.validate(config)
    return config


def export(plugin_class):
    """The `WitWorld` class componentize-py exports for `plugin_class`
    (None outside a component, where there is no host)."""
    if wit_world is None:
        return None
    t = _t
    plugin = plugin_class()
    host = _WasmHost()
    statuses = {OK: t.Status.OK, WARNING: t.Status.WARNING, CRITICAL: t.Status.CRITICAL, UNKNOWN: t.Status.UNKNOWN}
    severities = {s.name.lower(): s for s in t.Severity}
    capabilities = {c.name.lower(): c for c in t.Capability}

    class WitWorld(wit_world.WitWorld):
        def describe(self):
            return t.PluginInfo(
                name=plugin.name,
                version=plugin.version,
                description=plugin.description,
                default_schedule=plugin.default_schedule,
                config_schema=json.dumps(plugin.config_schema),
                capabilities=[capabilities[c] for c in plugin.capabilities],
            )

        def validate(self, config):
            try:
                parse_config(plugin, config)
            except ConfigError as e:
                raise Err(str(e))

        def run(self, ctx):
            try:
                config = parse_config(plugin, ctx.config)
                c = Context(host, ctx.check, config, ctx.scheduled_unix_ms, ctx.attempt, ctx.deadline_unix_ms,
                            host.action())
                r = plugin.run(c)
            except (ConfigError, PluginError) as e:
                raise Err(str(e))
            return t.Report(
                status=statuses[r.status],
                summary=r.summary,
                metrics=[t.Metric(m.name, m.value, m.unit, [t.Pair(k, v) for k, v in m.labels.items()]) for m in r.metrics],
                findings=[t.Finding(f.fingerprint, f.rule, severities[f.severity], f.message, f.location,
                                    [t.Pair(k, v) for k, v in f.attributes.items()]) for f in r.findings],
                outputs=[t.Output(k, v) for k, v in r.outputs.items()],
            )

    return WitWorld


class _WasmHost:
    """The agent, through the component's imports."""

    def __init__(self):
        self._h = _host

    def log(self, level, message, fields):
        self._h.log(self._h.LogLevel[level.upper()], message, [_t.Pair(k, v) for k, v in fields.items()])

    def state_get(self, key):
        return self._h.state_get(key)

    def state_set(self, key, value):
        try:
            self._h.state_set(key, value)
        except Err as e:
            raise PluginError(f"state {key!r}: {e.value}")

    def state_delete(self, key):
        self._h.state_delete(key)

    def env(self, name):
        return dict(_env.get_environment()).get(name)

    def action(self):
        a = self._h.action()
        if a is None:
            return None
        return Action(a.name, a.idempotency_key, a.dry_run, a.trigger_check,
                      a.trigger_status.name.lower(), a.trigger_summary)

    def http(self, method, url, headers, body, timeout_ms):
        h, streams = _http, _streams
        parts = urlsplit(url)
        methods = {"GET": h.Method_Get(), "HEAD": h.Method_Head(), "POST": h.Method_Post(),
                   "PUT": h.Method_Put(), "DELETE": h.Method_Delete(), "PATCH": h.Method_Patch(),
                   "OPTIONS": h.Method_Options()}
        entries = [(k.lower(), str(v).encode()) for k, v in headers.items()]
        if body is not None:
            # A length, not chunks: many servers refuse chunked requests.
            entries.append(("content-length", str(len(body)).encode()))
        started = time.monotonic()
        request = h.OutgoingRequest(h.Fields.from_list(entries))
        request.set_method(methods.get(method, h.Method_Other(method)))
        request.set_scheme(h.Scheme_Https() if parts.scheme == "https" else h.Scheme_Http())
        request.set_authority(parts.netloc.rsplit("@", 1)[-1])
        request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        options = h.RequestOptions()
        options.set_connect_timeout(timeout_ms * 1_000_000)
        options.set_first_byte_timeout(timeout_ms * 1_000_000)
        options.set_between_bytes_timeout(timeout_ms * 1_000_000)
        outgoing = request.body()
        try:
            future = _outgoing.handle(request, options)
        except Err as e:
            raise HttpError(_http_error(url, e.value))
        if body is not None:
            with outgoing.write() as out:
                for i in range(0, len(body), 4096):
                    out.blocking_write_and_flush(body[i:i + 4096])
        h.OutgoingBody.finish(outgoing, None)
        with future:
            with future.subscribe() as ready:
                ready.block()
            result = future.get()
        if result is None or isinstance(result, Err):
            raise HttpError(f"{url}: no response")
        inner = result.value
        if isinstance(inner, Err):
            raise HttpError(_http_error(url, inner.value))
        with inner.value as response:
            status = response.status()
            with response.headers() as fields:
                received = {}
                for k, v in fields.entries():
                    received.setdefault(k.lower(), []).append(v.decode("latin-1"))
            chunks = []
            with response.consume() as incoming:
                with incoming.stream() as stream:
                    while True:
                        try:
                            chunks.append(stream.blocking_read(65536))
                        except Err as e:
                            if isinstance(e.value, streams.StreamError_Closed):
                                break
                            raise HttpError(f"{url}: reading the body failed")
        return Response(status, received, b"".join(chunks), (time.monotonic() - started) * 1000)


def _http_error(url, code):
    name = type(code).__name__.removeprefix("ErrorCode_")
    if name == "HttpRequestDenied":
        return f"{url}: refused: the check does not grant this host (allow.hosts)"
    words = "".join(" " + c.lower() if c.isupper() else c for c in name).strip()
    return f"{url}: {words}"
