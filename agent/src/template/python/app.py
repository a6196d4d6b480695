"""{{name}}: a Warden plugin in Python. It probes a URL: the status it
answers with, how long it takes, and (a finding) whether it sends
`Strict-Transport-Security`. Build with `./build.sh`, test with
`./build.sh test`."""

from warden import CRITICAL, OK, WARNING, ConfigError, Plugin, Report, export


class App(Plugin):
    name = "{{name}}"
    version = "0.1.0"
    description = "Probes a URL: status, latency, HSTS."
    default_schedule = "@every 60s"
    capabilities = ["http", "state"]
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "description": "What to probe (http or https)."},
            "expect_status": {"type": "integer", "default": 200},
            "max_ms": {"type": "number", "default": 1000, "description": "Slower is a warning."},
        },
    }

    def validate(self, config):
        unknown = set(config) - set(self.config_schema["properties"])
        if unknown:
            raise ConfigError(f"{sorted(unknown)[0]}: unknown field")
        url = config.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("url: required, an http:// or https:// URL")
        if not isinstance(config.get("expect_status", 200), int):
            raise ConfigError("expect_status: must be an integer")
        max_ms = config.get("max_ms", 1000)
        if not isinstance(max_ms, (int, float)) or max_ms <= 0:
            raise ConfigError("max_ms: must be a positive number")

    def run(self, ctx):
        url = ctx.config["url"]
        expect = ctx.config.get("expect_status", 200)
        max_ms = ctx.config.get("max_ms", 1000)
        if ctx.action is not None and ctx.action.dry_run:
            # Run by an [[action]] with dry_run: say what it would do.
            return Report(OK, f"dry run of {ctx.action.name}: would probe {url}")
        runs = ctx.state.get("runs", 0) + 1
        ctx.state.set("runs", runs)
        resp = ctx.http.get(url)
        if resp.status != expect:
            status, summary = CRITICAL, f"{url} answered {resp.status}, expected {expect}"
        elif resp.elapsed_ms > max_ms:
            status, summary = WARNING, f"{url} answered in {resp.elapsed_ms:.0f} ms, over {max_ms} ms"
        else:
            status, summary = OK, f"{url} answered {resp.status} in {resp.elapsed_ms:.0f} ms"
        ctx.log("info", "probed", url=url, status=resp.status, run=runs)
        report = (
            Report(status, summary)
            .metric("probe_http_status_code", resp.status)
            .metric("probe_duration_seconds", resp.elapsed_ms / 1000, "seconds")
        )
        if url.startswith("https://") and resp.header("strict-transport-security") is None:
            report.finding(f"hsts:{url}", "missing-hsts", f"{url} sends no Strict-Transport-Security", "low", url)
        return report


WitWorld = export(App)
