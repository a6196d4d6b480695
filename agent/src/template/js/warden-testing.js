// warden-testing.js: a fake host for unit tests of a JS Warden plugin:
// routes for HTTP, state in a Map, a list of log records, environment
// variables. No component, no agent: `node --test` runs the plugin's
// logic natively.

import { Context, HttpError, Response, parseConfig } from './warden.js';

export class FakeHost {
  constructor(env = {}) {
    this.routes = new Map();
    this.state = new Map();
    this.logs = [];
    this.requests = [];
    this.environment = { ...env };
  }

  /** Answers `method url` with this; an unrouted request is refused as
   * the agent refuses a host the check does not grant. */
  route(method, url, { status = 200, body = '', headers = {}, elapsedMs = 5 } = {}) {
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
    const h = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [String(v)]]));
    this.routes.set(`${method.toUpperCase()} ${url}`, new Response(status, h, bytes, elapsedMs));
    return this;
  }

  /** A run's context for `plugin` with `config` (validated first);
   * `action` (`{ name, idempotencyKey, dryRun, ... }`) makes it an
   * `[[action]]`'s run. */
  context(plugin, config, check = 'test', action = null) {
    return new Context(this, check, parseConfig(plugin, JSON.stringify(config)), { action });
  }

  // The host's side, as `component.js` has it.
  log(level, message, fields) { this.logs.push({ level, message, fields }); }

  stateGet(key) { return this.state.get(key); }

  stateSet(key, value) { this.state.set(key, value); }

  stateDelete(key) { this.state.delete(key); }

  env(name) { return this.environment[name]; }

  async http(method, url, headers, body, timeoutMs) {
    this.requests.push({ method, url, headers, body, timeoutMs });
    const answer = this.routes.get(`${method} ${url}`);
    if (!answer) throw new HttpError(`${url}: refused: the check does not grant this host (allow.hosts)`);
    return answer;
  }
}
