import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { federationSpecSchemas, strictJsonSchema } from './settings-schema.js';

const CRD_DIR = fileURLToPath(new URL('../../../crds/', import.meta.url));

/** Kubernetes' structural-schema rules that matter here: every node typed, properties without additionalProperties. */
function structuralProblems(s: Record<string, unknown>, path: string): string[] {
  const problems: string[] = [];
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  if (s.type === undefined && !preserve && !s['x-kubernetes-int-or-string']) problems.push(`${path}: no type`);
  if (s.properties && s.additionalProperties !== undefined)
    problems.push(`${path}: properties with additionalProperties`);
  for (const [k, v] of Object.entries((s.properties as Record<string, Record<string, unknown>>) ?? {}))
    problems.push(...structuralProblems(v, `${path}.${k}`));
  if (s.items) problems.push(...structuralProblems(s.items as Record<string, unknown>, `${path}[]`));
  return problems;
}

test('the CRDs are structural, with status subresources, printer columns and short names', () => {
  const files = readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'));
  assert.deepEqual(files.sort(), ['fednano.io_federationrounds.yaml', 'fednano.io_federations.yaml']);
  for (const f of files) {
    const crd = parse(readFileSync(`${CRD_DIR}${f}`, 'utf8'));
    assert.equal(crd.spec.group, 'fednano.io');
    const v = crd.spec.versions[0];
    assert.equal(v.name, 'v1alpha1');
    assert.deepEqual(structuralProblems(v.schema.openAPIV3Schema, f), []);
    assert.deepEqual(v.subresources, { status: {} });
    assert.ok(v.additionalPrinterColumns.some((c: { name: string }) => c.name === 'Phase'));
    assert.ok(crd.spec.names.shortNames.length > 0);
  }
});

test('local configs read the federation settings from the CRD, refusing unknown fields', () => {
  const s = federationSpecSchemas();
  assert.deepEqual(Object.keys(s.adapter!.properties as object), ['rank', 'alpha', 'rankMerge']);
  assert.equal(s.adapter!.additionalProperties, false);
  assert.equal((s.strategy!.properties as Record<string, { enum?: string[] }>).name!.enum!.includes('fisher'), true);
  // Fields Kubernetes keeps as free-form stay free-form.
  const free = strictJsonSchema({
    type: 'object',
    properties: {
      a: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: { b: { type: 'string' } } },
    },
  });
  assert.equal((free.properties as Record<string, Record<string, unknown>>).a!.additionalProperties, undefined);
});
