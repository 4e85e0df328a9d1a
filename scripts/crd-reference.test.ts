import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkCrdReference, OUTPUT, renderCrdReference } from './crd-reference.js';

const rendered = renderCrdReference();
const row = (field: string) => rendered.split('\n').find((l) => l.startsWith(`| \`${field}\` `));

test('docs/crd-reference.md is what `npm run docs:crd` renders from crds/ (regenerate it when this fails)', () => {
  assert.equal(readFileSync(OUTPUT, 'utf8'), rendered);
});

test('the rendering is deterministic', () => {
  assert.equal(renderCrdReference(), rendered);
});

test('names, scope and printer columns of both kinds', () => {
  assert.match(rendered, /^## Federation$/m);
  assert.match(rendered, /^## FederationRound$/m);
  assert.match(rendered, /\| short names +\| `fedround`, `fr` +\|/);
  assert.match(rendered, /\| categories +\| `fednano` +\|/);
  assert.match(rendered, /\| scope +\| Namespaced +\|/);
  assert.match(rendered, /`fednano\.io\/v1alpha1`: served; storage version; subresources: `status`/);
  assert.match(rendered, /\| Expected +\| integer +\| `\.status\.expected` +\|/);
  assert.ok(rendered.indexOf('## Federation\n') < rendered.indexOf('## FederationRound\n'), 'ordered by kind');
});

test('every field path, with types, required, defaults and constraints', () => {
  assert.match(row('spec.adapter.rank')!, /\| integer +\| yes +\| +\| minimum: 1; maximum: 1024 +\|/);
  assert.match(row('spec.participation.minClients')!, /\| integer +\| +\| +\| minimum: 1 +\|/);
  assert.match(row('spec.clients[].nodeSelector')!, /\| map\[string\]string +\|/);
  assert.match(row('spec.clients')!, /minItems: 1; maxItems: 10000; list-type: map \(map keys: `name`\)/);
  assert.match(row('spec.clients[].dataVolume')!, /preserve-unknown-fields/);
  assert.match(row('spec.llmHost.tolerations')!, /\| \[\]object +\| .*items: preserve-unknown-fields/);
  assert.match(row('spec.llmHost.gpus')!, /\| `1` +\| minimum: 0; maximum: 16 +\| nvidia\.com\/gpu per replica/);
  assert.match(row('spec.updateEncoding')!, /\| `float32` +\| enum: `float32`, `float16`, `bfloat16`, `int8`/);
  // OpenAPI 3.0 boolean exclusive bounds, as apiextensions v1 declares them.
  assert.match(row('spec.adapter.alpha')!, /minimum: 0 \(exclusive\)/);
  assert.match(row('spec.strategy.trim')!, /minimum: 0; maximum: 0\.5 \(exclusive\)/);
  assert.match(row('spec.round')!, /\| integer +\| yes +\|/);
  assert.match(row('spec.deadlineSeconds')!, /\| `3600` +\| minimum: 10; maximum: 604800/);
  assert.match(row('spec.participants')!, /\| \[\]string +\| .*minItems: 1; list-type: set/);
  assert.match(row('status.clients[].state')!, /enum: `Pending`, `Training`, `Uploaded`, `Counted`, `Rejected`/);
  assert.match(row('status.conditions[].lastTransitionTime')!, /format: date-time/);
  assert.match(row('spec.model.sha256')!, /pattern: `\^\[0-9a-f\]\{64\}\$`/);
  for (const missing of ['apiVersion', 'kind', 'metadata']) assert.equal(row(missing), undefined);
});

test('CEL rules with their messages and the path they sit on', () => {
  const rule = (message: string) => rendered.split('\n').find((l) => l.includes(`| ${message} `));
  assert.match(
    rule('minClients must not exceed the number of participants')!,
    /^\| `spec` +\| `!has\(self\.participants\) \\\|\\\|/,
  );
  assert.match(rule('give exactly one of clientsPerRound or fraction')!, /^\| `spec\.participation` +\|/);
  assert.match(rule('round is immutable')!, /`self\.round == oldSelf\.round`/);
});

test('--check passes on the committed file; a stale or missing file is reported', () => {
  const script = fileURLToPath(new URL('crd-reference.ts', import.meta.url));
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, '--check'], { encoding: 'utf8' });
  assert.match(out, /docs\/crd-reference\.md is up to date/);
  assert.equal(checkCrdReference(), undefined);
  const dir = mkdtempSync(join(tmpdir(), 'crd-reference-'));
  try {
    const stale = join(dir, 'crd-reference.md');
    writeFileSync(stale, `${rendered}stale\n`);
    assert.match(checkCrdReference(stale)!, /out of date with crds\/: run `npm run docs:crd`/);
    assert.match(checkCrdReference(join(dir, 'absent.md'))!, /is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
