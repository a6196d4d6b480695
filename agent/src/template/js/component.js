// component.js: the component's entry (what componentize-js builds). It
// gives `exportPlugin` the real host, the component's imports, and
// exports the world's three functions. Unit tests never load this file.

import { action, log, stateGet, stateSet, stateDelete } from 'warden:plugin/host@0.1.0';
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

import plugin from './app.js';
import { HttpError, PluginError, Response, exportPlugin } from './warden.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** The agent, through the component's imports. */
const host = {
  log(level, message, fields) {
    log(LEVELS.includes(level) ? level : 'info', message,
      Object.entries(fields).map(([name, value]) => ({ name, value })));
  },
  stateGet(key) {
    return stateGet(key);
  },
  stateSet(key, value) {
    try {
      stateSet(key, value);
    } catch (e) {
      throw new PluginError(`state ${JSON.stringify(key)}: ${e?.payload ?? e}`);
    }
  },
  stateDelete(key) {
    stateDelete(key);
  },
  env(name) {
    const found = getEnvironment().find(([k]) => k === name);
    return found ? found[1] : undefined;
  },
  action() {
    return action();
  },
  async http(method, url, headers, body, timeoutMs) {
    const started = performance.now();
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new HttpError(`${url}: no response within ${timeoutMs} ms`)), timeoutMs);
    });
    let response, bytes;
    try {
      response = await Promise.race([fetch(url, { method, headers, body }), timeout]);
      bytes = new Uint8Array(await Promise.race([response.arrayBuffer(), timeout]));
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(httpError(url, e));
    } finally {
      clearTimeout(timer);
    }
    const received = {};
    for (const [k, v] of response.headers) (received[k.toLowerCase()] ??= []).push(v);
    return new Response(response.status, received, bytes, performance.now() - started);
  },
};

function httpError(url, e) {
  const text = String(e?.message ?? e);
  if (/denied/i.test(text)) return `${url}: refused: the check does not grant this host (allow.hosts)`;
  return `${url}: ${text}`;
}

const world = exportPlugin(plugin, host);
export const describe = () => world.describe();
export const validate = (config) => world.validate(config);
export const run = (ctx) => world.run(ctx);
