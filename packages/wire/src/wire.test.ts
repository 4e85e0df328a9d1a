import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkName, parseUpdateSubject, updateSubject } from './names.js';
import { floatTensor, int64Tensor, readFloat, readInt64, TensorError } from './tensors.js';

test('tensors round-trip and malformed ones are refused with the reason', () => {
  const f = floatTensor([2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]));
  const out = { ...f, dims: f.dims as number[], data: Buffer.from(f.data as Buffer), dtype: f.dtype as string };
  assert.deepEqual([...readFloat('x', out as never, [2, 3]).data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...readFloat('x', out as never, [undefined, 3]).dims], [2, 3]);
  assert.throws(() => readFloat('x', out as never, [3, 2]), /x has shape \[2,3\], expected \[3,2\]/);
  assert.throws(() => readInt64('x', out as never, [2, 3]), TensorError);
  assert.throws(() => readFloat('x', { ...out, data: Buffer.alloc(5) } as never, [2, 3]), /5 data bytes, expected 24/);
  assert.throws(() => readFloat('x', null, [1]), /x is missing/);
  const i = int64Tensor([2], BigInt64Array.from([-100n, 7n]));
  assert.deepEqual([...readInt64('t', { ...i, data: Buffer.from(i.data as Buffer) } as never, [2]).data], [-100n, 7n]);
});

test('names: subjects round-trip; tokens that would break subjects are refused', () => {
  const f = { namespace: 'team-a', federation: 'vqa' };
  assert.deepEqual(parseUpdateSubject(updateSubject(f, 4, 'client-1')), { ...f, round: 4, client: 'client-1' });
  assert.equal(parseUpdateSubject('fednano.a.b.round.x.update.c'), undefined);
  for (const bad of ['a.b', 'a*', 'A', '-a', '', 'a b', 'x'.repeat(64)])
    assert.throws(() => checkName('client', bad), /not a valid name/);
});

test('the generated TypeScript types match proto/ (npm run proto:gen is up to date)', async () => {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const out = await mkdtemp(join(tmpdir(), 'fednano-proto-'));
  try {
    execFileSync(
      join(root, 'node_modules/.bin/proto-loader-gen-types'),
      [
        'fednano/v1/llm_host.proto',
        '--includeDirs=proto',
        '--longs=Number',
        '--enums=String',
        '--defaults',
        '--oneofs',
        '--includeComments',
        '--grpcLib=@grpc/grpc-js',
        '--importFileExtension=.js',
        `--outDir=${out}`,
      ],
      { cwd: root, stdio: 'pipe' },
    );
    const committed = join(root, 'packages/wire/src/generated');
    const files = async (dir: string): Promise<string[]> =>
      (await readdir(dir, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => relative(dir, join(e.parentPath, e.name)))
        .sort();
    assert.deepEqual(await files(out), await files(committed));
    for (const f of await files(out))
      assert.equal(
        await readFile(join(out, f), 'utf8'),
        await readFile(join(committed, f), 'utf8'),
        `${f} is stale: run npm run proto:gen`,
      );
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
