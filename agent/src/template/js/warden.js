// warden.js: the JavaScript side of a Warden plugin, the counterpart of the
// Rust SDK's surface: a plugin object's shape, `Report`, errors, and a
// `Context` with HTTP, JSON state, logging and environment.
//
// Written by `warden new --lang js`; the same file in every JS plugin of
// one Warden version. Nothing here touches the host: `component.js` gives
// `exportPlugin` the real one (the component's imports), and
// `warden-testing.js`'s `FakeHost` stands in for it in unit tests.
//
// Errors: throw `ConfigError("field: why")` from `validate`, and
// `PluginError("why")` (or let `HttpError` through) from `run`: both are
// reported by their message ("plugin error: ..."). Any other exception is
// a bug: it is reported as `Name: message` and its stack goes to stderr,
// which the agent keeps with the run.

export const OK = 'ok';
export const WARNING = 'warning';
export const CRITICAL = 'critical';
export const UNKNOWN = 'unknown';
export const STATUSES = [OK, WARNING, CRITICAL, UNKNOWN];
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
export const CAPABILITIES = ['http', 'filesystem', 'environment', 'state'];

/** `validate`'s refusal: the message names the field (`url: ...`). */
export class ConfigError extends Error {
  get name() { return 'ConfigError'; }
}

/** A run's own failure: reported as `unknown` with this message. */
export class PluginError extends Error {
  get name() { return 'PluginError'; }
}

/** A request that got no response: refused by the check's grants, a
 * connection error, a timeout. */
export class HttpError extends PluginError {
  get name() { return 'HttpError'; }
}

/** What a run found: a status, a one-line summary, and what it measured,
 * found and publishes. */
export class Report {
  constructor(status, summary) {
    if (!STATUSES.includes(status)) throw new TypeError(`status: ${status} is not one of ${STATUSES}`);
    this.status = status;
    this.summary = String(summary);
    this.metrics = [];
    this.findings = [];
    this.outputs = {};
  }

  metric(name, value, unit = '', labels = {}) {
    this.metrics.push({ name, value: Number(value), unit, labels: stringValues(labels) });
    return this;
  }

  finding(fingerprint, rule, message, { severity = 'medium', location = undefined, attributes = {} } = {}) {
    if (!SEVERITIES.includes(severity)) throw new TypeError(`severity: ${severity} is not one of ${SEVERITIES}`);
    this.findings.push({ fingerprint, rule, message, severity, location, attributes: stringValues(attributes) });
    return this;
  }

  output(key, value) {
    this.outputs[key] = String(value);
    return this;
  }
}

/** An HTTP response, its body read. */
export class Response {
  constructor(status, headers, body, elapsedMs) {
    this.status = status;
    this.headers = headers; // lower-case name -> [values]
    this.body = body; // Uint8Array
    this.elapsedMs = elapsedMs;
  }

  get ok() { return this.status >= 200 && this.status < 300; }

  text() { return new TextDecoder().decode(this.body); }

  json() { return JSON.parse(this.text()); }

  header(name) {
    const values = this.headers[name.toLowerCase()];
    return values && values.length ? values[0] : undefined;
  }
}

/** HTTP through the check's grants (`allow.hosts`). Every call returns a
 * promise: `await ctx.http.get(url)`. */
export class Http {
  constructor(host) { this._host = host; }

  get(url, { headers = {}, timeoutMs = 10000 } = {}) {
    return this.request('GET', url, { headers, timeoutMs });
  }

  postJson(url, value, { headers = {}, timeoutMs = 10000 } = {}) {
    const h = { 'content-type': 'application/json', ...headers };
    return this.request('POST', url, { headers: h, body: JSON.stringify(value), timeoutMs });
  }

  async request(method, url, { headers = {}, body = undefined, timeoutMs = 10000 } = {}) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw new HttpError(`${url}: not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new HttpError(`${url}: not an http(s) URL`);
    }
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
    return this._host.http(method.toUpperCase(), url, lowerKeys(headers), bytes, timeoutMs);
  }
}

/** The check's state, kept by the agent across runs: JSON values. */
export class State {
  constructor(host) { this._host = host; }

  get(key, fallback = undefined) {
    const raw = this._host.stateGet(key);
    return raw === undefined ? fallback : JSON.parse(raw);
  }

  set(key, value) { this._host.stateSet(key, JSON.stringify(value)); }

  delete(key) { this._host.stateDelete(key); }
}

/** Everything a run has: its check, config, HTTP, state, log, env. Times
 * are Numbers of milliseconds since the Unix epoch. */
export class Context {
  constructor(host, check, config, { scheduledUnixMs = 0, attempt = 1, deadlineUnixMs = 0, action = null } = {}) {
    this.check = check;
    this.config = config;
    this.scheduledUnixMs = Number(scheduledUnixMs);
    this.attempt = attempt;
    this.deadlineUnixMs = Number(deadlineUnixMs);
    // A run started by an `[[action]]` (a runbook's remedy): `{ name,
    // idempotencyKey, dryRun, triggerCheck, triggerStatus, triggerSummary }`;
    // null for a check's run. Send `idempotencyKey` as the
    // `Idempotency-Key` of the request that changes something; when
    // `dryRun`, change nothing and report what you would do.
    this.action = action ?? null;
    this.http = new Http(host);
    this.state = new State(host);
    this._host = host;
  }

  log(level, message, fields = {}) { this._host.log(level, message, stringValues(fields)); }

  env(name) { return this._host.env(name); }
}

/** The config as an object, validated by `plugin`; `ConfigError` if not. */
export function parseConfig(plugin, text) {
  let config;
  try {
    config = text.trim() ? JSON.parse(text) : {};
  } catch (e) {
    throw new ConfigError(`config is not JSON: ${e.message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigError('config must be a JSON object');
  }
  if (plugin.validate) plugin.validate(config);
  return config;
}

/** The world's exports (`describe`, `validate`, `run`, in the shapes the
 * component's bindings take) for `plugin` on `host`. */
export function exportPlugin(plugin, host) {
  return {
    describe() {
      return {
        name: plugin.name,
        version: plugin.version ?? '0.1.0',
        description: plugin.description ?? '',
        defaultSchedule: plugin.defaultSchedule,
        configSchema: JSON.stringify(plugin.configSchema ?? { type: 'object' }),
        capabilities: plugin.capabilities ?? [],
      };
    },

    validate(config) {
      guard(() => { parseConfig(plugin, config); });
    },

    async run(ctx) {
      return guardAsync(async () => {
        const config = parseConfig(plugin, ctx.config);
        const c = new Context(host, ctx.check, config, { ...ctx, action: host.action() });
        const r = await plugin.run(c);
        if (!(r instanceof Report)) throw new TypeError('run must return a Report');
        return {
          status: r.status,
          summary: r.summary,
          metrics: r.metrics.map((m) => ({ ...m, labels: pairs(m.labels) })),
          findings: r.findings.map((f) => ({ ...f, attributes: pairs(f.attributes) })),
          outputs: Object.entries(r.outputs).map(([key, value]) => ({ key, value })),
        };
      });
    },
  };
}

// The component's `result<_, string>` takes a thrown string as its `err`;
// anything else thrown would abort the engine. Our errors become their
// message; a bug becomes `Name: message`, with its stack on stderr.
function failure(e) {
  if (e instanceof ConfigError || e instanceof PluginError) return e.message;
  if (e instanceof Error) {
    console.error(`${e.name}: ${e.message}\nStack:\n${e.stack ?? ''}`);
    return `${e.name}: ${e.message}`;
  }
  return String(e);
}

function guard(f) {
  try {
    return f();
  } catch (e) {
    throw failure(e);
  }
}

async function guardAsync(f) {
  try {
    return await f();
  } catch (e) {
    throw failure(e);
  }
}

function stringValues(o) {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
}

function lowerKeys(o) {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), String(v)]));
}

function pairs(o) {
  return Object.entries(o).map(([name, value]) => ({ name, value }));
}
