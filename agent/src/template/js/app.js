// {{name}}: a Warden plugin in JavaScript. It probes a URL: the status it
// answers with, how long it takes, and (a finding) whether it sends
// `Strict-Transport-Security`. Build with `./build.sh`, test with
// `./build.sh test`.

import { CRITICAL, ConfigError, OK, Report, WARNING } from './warden.js';

const FIELDS = ['url', 'expect_status', 'max_ms'];

export default {
  name: '{{name}}',
  version: '0.1.0',
  description: 'Probes a URL: status, latency, HSTS.',
  defaultSchedule: '@every 60s',
  capabilities: ['http', 'state'],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    properties: {
      url: { type: 'string', description: 'What to probe (http or https).' },
      expect_status: { type: 'integer', default: 200 },
      max_ms: { type: 'number', default: 1000, description: 'Slower is a warning.' },
    },
  },

  validate(config) {
    const unknown = Object.keys(config).filter((k) => !FIELDS.includes(k)).sort();
    if (unknown.length) throw new ConfigError(`${unknown[0]}: unknown field`);
    const url = config.url;
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
      throw new ConfigError('url: required, an http:// or https:// URL');
    }
    if (!Number.isInteger(config.expect_status ?? 200)) {
      throw new ConfigError('expect_status: must be an integer');
    }
    const maxMs = config.max_ms ?? 1000;
    if (typeof maxMs !== 'number' || !(maxMs > 0)) {
      throw new ConfigError('max_ms: must be a positive number');
    }
  },

  async run(ctx) {
    const { url } = ctx.config;
    const expect = ctx.config.expect_status ?? 200;
    const maxMs = ctx.config.max_ms ?? 1000;
    if (ctx.action?.dryRun) {
      // Run by an [[action]] with dry_run: say what it would do.
      return new Report(OK, `dry run of ${ctx.action.name}: would probe ${url}`);
    }
    const runs = ctx.state.get('runs', 0) + 1;
    ctx.state.set('runs', runs);
    const resp = await ctx.http.get(url);
    let status, summary;
    if (resp.status !== expect) {
      [status, summary] = [CRITICAL, `${url} answered ${resp.status}, expected ${expect}`];
    } else if (resp.elapsedMs > maxMs) {
      [status, summary] = [WARNING, `${url} answered in ${resp.elapsedMs.toFixed(0)} ms, over ${maxMs} ms`];
    } else {
      [status, summary] = [OK, `${url} answered ${resp.status} in ${resp.elapsedMs.toFixed(0)} ms`];
    }
    ctx.log('info', 'probed', { url, status: resp.status, run: runs });
    const report = new Report(status, summary)
      .metric('probe_http_status_code', resp.status)
      .metric('probe_duration_seconds', resp.elapsedMs / 1000, 'seconds');
    if (url.startsWith('https://') && resp.header('strict-transport-security') === undefined) {
      report.finding(`hsts:${url}`, 'missing-hsts', `${url} sends no Strict-Transport-Security`,
        { severity: 'low', location: url });
    }
    return report;
  },
};
