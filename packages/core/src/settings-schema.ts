import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * The federation settings schema lives in one place, the Federation CRD (crds/fednano.io_federations.yaml); every
 * config that carries federation settings (fednano simulate, fednano run) validates them with the schemas read
 * from there. Kubernetes prunes or (with kubectl's strict field validation) refuses unknown fields; local configs
 * get the same effect from `additionalProperties: false`, added here to every object that lists its properties.
 */
export const FEDERATION_CRD_PATH = fileURLToPath(new URL('../../../crds/fednano.io_federations.yaml', import.meta.url));

type Schema = Record<string, unknown>;

/**
 * A JSON Schema from an OpenAPI v3 CRD schema: Kubernetes extensions dropped, unknown fields refused, and OpenAPI
 * 3.0's boolean exclusiveMinimum/exclusiveMaximum (what apiextensions v1 accepts) turned into JSON Schema's numbers.
 */
export function strictJsonSchema(s: Schema): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'description') continue;
    if ((k === 'exclusiveMinimum' || k === 'exclusiveMaximum') && typeof v === 'boolean') continue;
    if (k === 'properties')
      out[k] = Object.fromEntries(
        Object.entries(v as Record<string, Schema>).map(([p, ps]) => [p, strictJsonSchema(ps)]),
      );
    else if (k === 'items' && typeof v === 'object') out[k] = strictJsonSchema(v as Schema);
    else out[k] = v;
  }
  if (s.exclusiveMinimum === true) {
    out.exclusiveMinimum = s.minimum;
    delete out.minimum;
  }
  if (s.exclusiveMaximum === true) {
    out.exclusiveMaximum = s.maximum;
    delete out.maximum;
  }
  if (s.properties && !s['x-kubernetes-preserve-unknown-fields'] && s.additionalProperties === undefined)
    out.additionalProperties = false;
  return out;
}

let cached: Record<string, Schema> | undefined;

/** The Federation spec's property schemas (adapter, strategy, training, participation, rounds, ...), as JSON Schema. */
export function federationSpecSchemas(): Record<string, Schema> {
  if (cached) return cached;
  const crd = parse(readFileSync(FEDERATION_CRD_PATH, 'utf8')) as {
    spec: {
      versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, Schema> } } } } }[];
    };
  };
  const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties;
  cached = Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, strictJsonSchema(v)]));
  return cached;
}
