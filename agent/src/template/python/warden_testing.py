"""A fake host for unit tests of a Python Warden plugin: routes for HTTP,
state in a dict, a list of log records, environment variables. No
component, no agent: `pytest` runs the plugin's logic natively."""

from warden import Context, HttpError, Response, parse_config


class FakeHost:
    def __init__(self, env=None):
        self.routes = {}
        self.state = {}
        self.logs = []
        self.requests = []
        self.environment = dict(env or {})

    def route(self, method, url, status=200, body=b"", headers=None, elapsed_ms=5.0):
        """Answers `method url` with this; an unrouted request is refused
        as the agent refuses a host the check does not grant."""
        if isinstance(body, str):
            body = body.encode()
        headers = {k.lower(): [v] for k, v in (headers or {}).items()}
        self.routes[(method.upper(), url)] = Response(status, headers, body, elapsed_ms)
        return self

    def context(self, plugin, config, check="test", action=None):
        """A run's context for `plugin` with `config` (validated first);
        `action`, a `warden.Action`, makes it an `[[action]]`'s run."""
        import json

        return Context(self, check, parse_config(plugin, json.dumps(config)), action=action)

    # The host's side, as `warden._WasmHost` has it.
    def log(self, level, message, fields):
        self.logs.append((level, message, fields))

    def state_get(self, key):
        return self.state.get(key)

    def state_set(self, key, value):
        self.state[key] = value

    def state_delete(self, key):
        self.state.pop(key, None)

    def env(self, name):
        return self.environment.get(name)

    def http(self, method, url, headers, body, timeout_ms):
        self.requests.append((method, url, headers, body))
        try:
            return self.routes[(method, url)]
        except KeyError:
            raise HttpError(f"{url}: refused: the check does not grant this host (allow.hosts)")
