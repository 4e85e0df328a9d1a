/** Unit tests of the emulator's pure parts: CEL, selectors, patches, schema validation, CRDs through the API. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { CelError, evaluateCel } from './cel.js';
import { ApiError, type KubeObject, startKubeApi } from './index.js';
import { jsonPatch, mergePatch, strategicMerge } from './patch.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { CrdSchema } from './validation.js';

describe('CEL subset', () => {
  const ev = (expr: string, self: unknown, oldSelf?: unknown) => evaluateCel(expr, { self, oldSelf });

  test('the rules of the fednano CRDs', () => {
    const spec = { participants: ['a', 'b'], minClients: 2, round: 1 };
    assert.equal(ev('!(has(self.participants) && has(self.fraction))', spec), true);
    assert.equal(ev('!(has(self.participants) && has(self.fraction))', { ...spec, fraction: 0.5 }), false);
    const rule = '!has(self.participants) || !has(self.minClients) || self.minClients <= size(self.participants)';
    assert.equal(ev(rule, spec), true);
    assert.equal(ev(rule, { ...spec, minClients: 3 }), false);
    assert.equal(ev(rule, { round: 1 }), true);
    assert.equal(ev('self.round == oldSelf.round', spec, { round: 1 }), true);
    assert.equal(ev('self.round == oldSelf.round', spec, { round: 2 }), false);
    assert.equal(ev('has(self.clientsPerRound) != has(self.fraction)', { clientsPerRound: 2 }), true);
    assert.equal(ev('has(self.clientsPerRound) != has(self.fraction)', {}), false);
  });

  test('operators, precedence, macros, strings and error absorption', () => {
    assert.equal(ev('1 + 2 * 3 == 7 && (1 + 2) * 3 == 9', null), true);
    assert.equal(ev('7 / 2 == 3 && 7 % 2 == 1 && -1 < 0', null), true);
    assert.equal(ev("self.name.startsWith('fed') && self.name.size() == 6 ? 'yes' : 'no'", { name: 'fedavg' }), 'yes');
    assert.equal(
      ev('self.clients.all(c, c.name != "") && self.clients.exists(c, c.name == "b")', {
        clients: [{ name: 'a' }, { name: 'b' }],
      }),
      true,
    );
    assert.deepEqual(ev('self.xs.filter(x, x > 1).map(x, x * 10)', { xs: [1, 2, 3] }), [20, 30]);
    assert.equal(ev("'b' in self.xs && !('z' in self.xs)", { xs: ['a', 'b'] }), true);
    assert.equal(ev("self.s.matches('^[a-z]+$')", { s: 'abc' }), true);
    // a missing field is an error, absorbed when the other side of || decides
    assert.throws(() => ev('self.missing == 1', {}), CelError);
    assert.equal(ev('self.missing == 1 || true', {}), true);
    assert.equal(ev('false && self.missing == 1', {}), false);
    assert.throws(() => ev('1 +', {}), CelError);
  });
});

describe('selectors', () => {
  test('label selector grammar', () => {
    const labels = { app: 'web', tier: 'front', 'example.com/x': 'y', n: '5' };
    const m = (s: string) => matchesLabels(parseLabelSelector(s), labels);
    assert.ok(m('app=web,tier==front'));
    assert.ok(m('app in (web, api), tier notin (back)'));
    assert.ok(m('example.com/x,!missing'));
    assert.ok(m('n>4,n<6'));
    assert.ok(!m('app!=web'));
    assert.ok(!m('missing'));
    assert.throws(() => parseLabelSelector('app=(x'), ApiError);
  });

  test('field selectors with escapes', () => {
    const o = { metadata: { name: 'a,b' }, spec: { nodeName: 'n1' } } as KubeObject;
    assert.ok(matchesFields(parseFieldSelector('metadata.name=a\\,b,spec.nodeName!=n2'), o));
    assert.ok(!matchesFields(parseFieldSelector('spec.nodeName=n2'), o));
  });
});

describe('patches', () => {
  test('merge patch, JSON patch, strategic merge patch', () => {
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] }), {
      a: 1,
      b: { d: 3, e: 4 },
      f: [1],
    });
    assert.deepEqual(
      jsonPatch({ a: [1, 2] }, [
        { op: 'add', path: '/a/-', value: 3 },
        { op: 'replace', path: '/a/0', value: 0 },
        { op: 'test', path: '/a/1', value: 2 },
      ]),
      { a: [0, 2, 3] },
    );
    assert.throws(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]), ApiError);
    const pod = {
      spec: {
        containers: [
          { name: 'a', image: 'x:1' },
          { name: 'b', image: 'y:1' },
        ],
      },
      metadata: { finalizers: ['f1'] },
    };
    assert.deepEqual(
      strategicMerge(pod, {
        spec: {
          containers: [
            { name: 'b', image: 'y:2' },
            { name: 'a', $patch: 'delete' },
            { name: 'c', image: 'z:1' },
          ],
        },
        metadata: { finalizers: ['f2'] },
      }),
      {
        spec: {
          containers: [
            { name: 'b', image: 'y:2' },
            { name: 'c', image: 'z:1' },
          ],
        },
        metadata: { finalizers: ['f1', 'f2'] },
      },
    );
  });
});

describe('schema validation', () => {
  const schema = new CrdSchema({
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          port: { 'x-kubernetes-int-or-string': true },
          when: { type: 'string', format: 'date-time' },
          tags: { type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'set' },
          free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          map: { type: 'object', additionalProperties: { type: 'integer', default: 0 } },
        },
      },
    },
  });
  test('int-or-string, formats, sets, preserved and additional properties', () => {
    const o = {
      metadata: { name: 'x', bogus: 1 },
      spec: {
        port: 'http',
        when: 'yesterday',
        tags: ['a', 'a'],
        free: { any: { thing: 1 } },
        map: { a: 'x' },
        drop: 1,
      },
    };
    assert.deepEqual(schema.prune(o), ['metadata.bogus', 'spec.drop']);
    assert.deepEqual((o.spec as Record<string, unknown>).free, { any: { thing: 1 } });
    const errors = schema.validate(o).map((e) => `${e.field} ${e.type}`);
    assert.deepEqual(errors.sort(), ['spec.map.a TypeInvalid', 'spec.tags[1] Duplicate', 'spec.when Invalid']);
  });
});

describe('CRDs through the API', () => {
  test('creating a CRD serves its (cluster-scoped) resources; deleting it deletes them', async () => {
    const api = await startKubeApi();
    try {
      const kc = new KubeConfig();
      kc.loadFromString(api.kubeconfig());
      const ext = kc.makeApiClient(ApiextensionsV1Api);
      const custom = kc.makeApiClient(CustomObjectsApi);
      await ext.createCustomResourceDefinition({
        body: {
          metadata: { name: 'widgets.example.com' },
          spec: {
            group: 'example.com',
            scope: 'Cluster',
            names: { plural: 'widgets', kind: 'Widget', shortNames: ['wd'] },
            versions: [
              {
                name: 'v1',
                served: true,
                storage: true,
                schema: {
                  openAPIV3Schema: {
                    type: 'object',
                    properties: { spec: { type: 'object', properties: { size: { type: 'integer', _default: 1 } } } },
                  },
                },
              },
            ],
          },
        },
      });
      const crd = await ext.readCustomResourceDefinition({ name: 'widgets.example.com' });
      assert.equal(crd.status?.conditions?.find((c) => c.type === 'Established')?.status, 'True');
      const w = (await custom.createClusterCustomObject({
        group: 'example.com',
        version: 'v1',
        plural: 'widgets',
        body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1' }, spec: {} },
      })) as KubeObject;
      assert.deepEqual(w.spec, { size: 1 });
      assert.equal(w.metadata.namespace, undefined);
      await ext.deleteCustomResourceDefinition({ name: 'widgets.example.com' });
      await api.idle();
      assert.equal(api.get('crd', undefined, 'widgets.example.com'), undefined);
      const res = await fetch(`${api.url}/apis/example.com/v1/widgets`);
      assert.equal(res.status, 404);
    } finally {
      await api.close();
    }
  });

  test('a CRD with JSON-Schema-style numeric exclusiveMinimum loads with warnings; strict mode refuses it', async () => {
    const { mkdtemp, readFile, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const repo = fileURLToPath(new URL('../../../crds/fednano.io_federationrounds.yaml', import.meta.url));
    const dir = await mkdtemp(join(tmpdir(), 'kube-api-crd-'));
    const crd = join(dir, 'numeric.yaml');
    // The form this repository's CRDs once had, which a real apiserver rejects.
    await writeFile(
      crd,
      (await readFile(repo, 'utf8')).replaceAll('minimum: 0, exclusiveMinimum: true', 'exclusiveMinimum: 0'),
    );
    try {
      const lenient = await startKubeApi({ crds: [crd] });
      await lenient.close();
      assert.ok(lenient.crdWarnings.length > 0);
      for (const w of lenient.crdWarnings) assert.match(w, /exclusiveM(in|ax)imum of type bool/);
      await assert.rejects(startKubeApi({ crds: [crd], strictCrdSchemas: true }), (e: unknown) => {
        assert.ok(e instanceof ApiError);
        assert.match(
          e.message,
          /cannot unmarshal number into Go struct field JSONSchemaProps\.spec\.versions\.schema\.openAPIV3Schema/,
        );
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
