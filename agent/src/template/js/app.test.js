// Unit tests of the plugin's logic, natively: `./build.sh test`.

import assert from 'node:assert/strict';
import test from 'node:test';

import plugin from './app.js';
import { CRITICAL, ConfigError, HttpError, OK, WARNING } from './warden.js';
import { FakeHost } from './warden-testing.js';

test('a healthy service is ok and runs are counted', async () => {
  const host = new FakeHost().route('GET', 'https://svc/health', {
    headers: { 'Strict-Transport-Security': 'max-age=60' },
  });
  const ctx = host.context(plugin, { url: 'https://svc/health' });
  const report = await plugin.run(ctx);
  assert.equal(report.status, OK);
  assert.deepEqual(report.findings, []);
  assert.equal((await plugin.run(ctx)).status, OK);
  assert.equal(host.state.get('runs'), '2');
});

test('a wrong status is critical and slow is a warning', async () => {
  let host = new FakeHost().route('GET', 'http://svc/', { status: 503 });
  assert.equal((await plugin.run(host.context(plugin, { url: 'http://svc/' }))).status, CRITICAL);
  host = new FakeHost().route('GET', 'http://svc/', { elapsedMs: 5000 });
  const ctx = host.context(plugin, { url: 'http://svc/', max_ms: 100 });
  assert.equal((await plugin.run(ctx)).status, WARNING);
});

test('missing HSTS is a finding', async () => {
  const host = new FakeHost().route('GET', 'https://svc/');
  const report = await plugin.run(host.context(plugin, { url: 'https://svc/' }));
  assert.deepEqual(report.findings.map((f) => f.rule), ['missing-hsts']);
});

test('bad config names the field', () => {
  assert.throws(() => plugin.validate({ url: 'ftp://x' }), ConfigError, /^url: /);
  assert.throws(() => plugin.validate({ url: 'http://x', max_ms: -1 }), /max_ms: /);
  assert.throws(() => plugin.validate({ url: 'http://x', colour: 'red' }), /colour: unknown field/);
});

test('a host not granted is refused', async () => {
  const ctx = new FakeHost().context(plugin, { url: 'http://elsewhere/' });
  await assert.rejects(plugin.run(ctx), (e) => e instanceof HttpError && /does not grant/.test(e.message));
});

test('a dry-run action says what it would do and sends nothing', async () => {
  const host = new FakeHost();
  const action = { name: 'recheck', idempotencyKey: 'key-1', dryRun: true, triggerCheck: 'web',
    triggerStatus: CRITICAL, triggerSummary: 'web answered 503' };
  const report = await plugin.run(host.context(plugin, { url: 'http://svc/' }, 'test', action));
  assert.equal(report.status, OK);
  assert.equal(report.summary, 'dry run of recheck: would probe http://svc/');
  assert.deepEqual(host.requests, []);
});
