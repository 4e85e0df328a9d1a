import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/fednano.mjs', import.meta.url));

function fednano(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const jsonLines = (s: string) =>
  s
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('fednano CLI', () => {
  test('usage and unknown commands or options exit 2 with one line', () => {
    const none = fednano();
    assert.equal(none.code, 2);
    assert.match(none.stdout, /usage: fednano <command>/);
    const unknown = fednano('train-everything');
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr.trim().split('\n').length, 1);
    assert.match(unknown.stderr, /unknown command 'train-everything'/);
    const badOption = fednano('footprint', '--rank', '8');
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /Unknown option '--rank'; see 'fednano footprint --help'/);
  });

  test('run: a config without a federated method, or no config, is one clear line', async () => {
    const { mkdtemp, readFile, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'fednano-cli-'));
    const config = join(dir, 'central.yaml');
    await writeFile(
      config,
      (await readFile(join(ROOT, 'test/fixtures/e2e-small.yaml'), 'utf8')).replace(
        'method: federated',
        'method: centralized',
      ),
    );
    const r = fednano('run', config);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /fednano run runs federated training only .*use fednano simulate for baselines/);
    assert.equal(fednano('run').code, 2);
  });

  test('a missing model folder is one clear line without a stack; --debug adds the stack', () => {
    const r = fednano('eval', '--model', '/nonexistent/model');
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /cannot read the model manifest.*npm run model:build/);
    assert.match(fednano('eval', '--model', '/nonexistent/model', '--debug').stderr, /\n\s+at /);
  });

  test('footprint --json: one JSON object per line, LLaVA-1.5-7B storage reduction from layer shapes', () => {
    const r = fednano('footprint', '--json');
    assert.equal(r.code, 0, r.stderr);
    const rows = jsonLines(r.stdout);
    assert.equal(rows.length, 3);
    const llava = rows.find((x) => x.model === 'LLaVA-1.5-7B')!;
    assert.ok(Math.abs((llava.storageReductionWithoutEmbeddings as number) - 0.954) < 0.001);
    assert.match(fednano('footprint').stdout, /client storage cut/);
  });

  test('verify checks the committed model', () => {
    const r = fednano('verify');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /verified models\/reference/);
  });

  test('data-stats and eval print per-client and per-type records', () => {
    const stats = jsonLines(
      fednano('data-stats', '--domain', 'digits', '--clients', '4', '--alpha', '0.3', '--json').stdout,
    );
    assert.equal(stats.length, 4);
    assert.ok(stats.every((s) => s.event === 'client' && (s.count as number) > 0));
    const ev = jsonLines(fednano('eval', '--domains', 'digits', '--images', '5', '--json').stdout);
    assert.equal(ev.at(-1)!.event, 'summary');
    assert.equal(ev.at(-1)!.examples, 15);
  });
});
