/**
 * Generates docs/crd-reference.md from the CRD schemas in crds/: per kind its names, scope and printer columns, a
 * table of every field (type, required, default, constraints, description) and the CEL validation rules.
 *
 *   npm run docs:crd              writes docs/crd-reference.md
 *   npm run docs:crd -- --check   exits 1 when the committed file differs from what this script renders
 *
 * The output depends only on the CRD files, so it is byte-for-byte reproducible.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CRDS_DIR = join(ROOT, 'crds');
export const OUTPUT = join(ROOT, 'docs/crd-reference.md');

/** The parts of an apiextensions.k8s.io/v1 JSONSchemaProps this reference reads. */
interface Schema {
  type?: string;
  format?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  /** OpenAPI 3.0 (what apiextensions v1 uses): a boolean that makes `minimum` exclusive. */
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  uniqueItems?: boolean;
  required?: string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-validations'?: CelRule[];
}

interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
}

interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  format?: string;
  description?: string;
  priority?: number;
}

interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  deprecated?: boolean;
  subresources?: { status?: unknown; scale?: unknown };
  additionalPrinterColumns?: PrinterColumn[];
  schema?: { openAPIV3Schema?: Schema };
}

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    names: {
      kind: string;
      listKind?: string;
      plural: string;
      singular?: string;
      shortNames?: string[];
      categories?: string[];
    };
    scope: string;
    versions: CrdVersion[];
  };
}

interface FieldRow {
  path: string;
  type: string;
  required: boolean;
  default: string;
  constraints: string[];
  description: string;
}

interface RuleRow {
  path: string;
  rule: string;
  message: string;
}

/** A table cell: one line, pipes escaped (also inside code spans, as GitHub's tables require). */
const cell = (s: string) => s.replace(/\s*\n\s*/g, ' ').replaceAll('|', '\\|');
const code = (s: string) => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);
const value = (v: unknown) => code(typeof v === 'string' ? v : JSON.stringify(v));

function typeOf(s: Schema): string {
  if (s['x-kubernetes-int-or-string']) return 'int-or-string';
  if (s.type === 'array') return `[]${s.items ? typeOf(s.items) : 'any'}`;
  if (s.type === 'object' && typeof s.additionalProperties === 'object' && !s.properties)
    return `map[string]${typeOf(s.additionalProperties)}`;
  return s.type ?? 'any';
}

/** The constraints a schema puts on its own value (not on its properties or items). */
function constraintsOf(s: Schema): string[] {
  const c: string[] = [];
  if (s.enum) c.push(`enum: ${s.enum.map(value).join(', ')}`);
  if (s.minimum !== undefined) c.push(`minimum: ${s.minimum}${s.exclusiveMinimum ? ' (exclusive)' : ''}`);
  if (s.maximum !== undefined) c.push(`maximum: ${s.maximum}${s.exclusiveMaximum ? ' (exclusive)' : ''}`);
  if (s.minLength !== undefined) c.push(`minLength: ${s.minLength}`);
  if (s.maxLength !== undefined) c.push(`maxLength: ${s.maxLength}`);
  if (s.pattern !== undefined) c.push(`pattern: ${code(s.pattern)}`);
  if (s.format !== undefined) c.push(`format: ${s.format}`);
  if (s.minItems !== undefined) c.push(`minItems: ${s.minItems}`);
  if (s.maxItems !== undefined) c.push(`maxItems: ${s.maxItems}`);
  if (s.uniqueItems) c.push('uniqueItems');
  if (s.minProperties !== undefined) c.push(`minProperties: ${s.minProperties}`);
  if (s.maxProperties !== undefined) c.push(`maxProperties: ${s.maxProperties}`);
  const listType = s['x-kubernetes-list-type'];
  if (listType) {
    const keys = s['x-kubernetes-list-map-keys'];
    c.push(`list-type: ${listType}${keys?.length ? ` (map keys: ${keys.map(code).join(', ')})` : ''}`);
  }
  if (s['x-kubernetes-map-type']) c.push(`map-type: ${s['x-kubernetes-map-type']}`);
  if (s.nullable) c.push('nullable');
  if (s['x-kubernetes-embedded-resource']) c.push('embedded-resource');
  if (s['x-kubernetes-preserve-unknown-fields']) c.push('preserve-unknown-fields');
  if (s['x-kubernetes-validations']?.length) c.push('CEL rules (below)');
  return c;
}

const ruleRow = (path: string, r: CelRule): RuleRow => ({
  path,
  rule: r.rule,
  message: [
    r.message ?? (r.messageExpression ? `messageExpression: ${r.messageExpression}` : ''),
    r.fieldPath ? `(reported at ${r.fieldPath})` : '',
    r.reason ? `(reason ${r.reason})` : '',
  ]
    .filter(Boolean)
    .join(' '),
});

/** Every field under `s`, depth first in schema order; array items continue the path with `[]`, map values with `.*`. */
function walk(s: Schema, path: string, required: boolean, rows: FieldRow[], rules: RuleRow[]): void {
  const constraints = constraintsOf(s);
  const items = s.type === 'array' ? s.items : undefined;
  const values = s.type === 'object' && typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
  // Constraints of scalar items or map values belong to the field itself ("items: ...").
  if (items && !items.properties) constraints.push(...constraintsOf(items).map((x) => `items: ${x}`));
  if (values && !values.properties) constraints.push(...constraintsOf(values).map((x) => `values: ${x}`));
  rows.push({
    path,
    type: typeOf(s),
    required,
    default: s.default === undefined ? '' : value(s.default),
    constraints,
    description: s.description ?? '',
  });
  for (const r of s['x-kubernetes-validations'] ?? []) rules.push(ruleRow(path, r));
  for (const [name, child] of Object.entries(s.properties ?? {}))
    walk(child, `${path}.${name}`, s.required?.includes(name) ?? false, rows, rules);
  if (items) {
    for (const r of items['x-kubernetes-validations'] ?? []) rules.push(ruleRow(`${path}[]`, r));
    for (const [name, child] of Object.entries(items.properties ?? {}))
      walk(child, `${path}[].${name}`, items.required?.includes(name) ?? false, rows, rules);
  }
  if (values)
    for (const [name, child] of Object.entries(values.properties ?? {}))
      walk(child, `${path}.*.${name}`, values.required?.includes(name) ?? false, rows, rules);
}

/** A Markdown table with its columns padded to equal width (the repository's table style). */
function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows].map((r) => r.map(cell));
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(all[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...all.slice(1).map(line)].join('\n');
}

/** The `#` comment lines at the top of a CRD file: what the resource is for, in the author's words. */
function leadingComment(text: string): string {
  const lines: string[] = [];
  for (const l of text.split('\n')) {
    if (!l.startsWith('#')) break;
    lines.push(l.replace(/^#\s?/, ''));
  }
  return lines.join(' ').trim();
}

const versionSummary = (v: CrdVersion) =>
  [
    v.served ? 'served' : 'not served',
    v.storage ? 'storage version' : '',
    v.deprecated ? 'deprecated' : '',
    `subresources: ${
      Object.keys(v.subresources ?? {})
        .map(code)
        .join(', ') || 'none'
    }`,
  ]
    .filter(Boolean)
    .join('; ');

/** Printer columns, fields and CEL rules of one version; `h` is the heading level of its sections. */
function renderVersion(crd: Crd, v: CrdVersion, h: string): string {
  const { names } = crd.spec;
  const out: string[] = [];
  const columns = v.additionalPrinterColumns ?? [];
  out.push(`${h} Printer columns`, '');
  if (columns.length) {
    // Optional columns only when some printer column sets them.
    const priority = columns.some((c) => c.priority);
    const description = columns.some((c) => c.description);
    out.push(
      `\`kubectl get ${names.plural}\` (or \`${names.shortNames?.[0] ?? names.plural}\`) shows NAME and:`,
      '',
      table(
        ['column', 'type', 'JSONPath', ...(priority ? ['priority'] : []), ...(description ? ['description'] : [])],
        columns.map((c) => [
          c.name,
          c.format ? `${c.type} (${c.format})` : c.type,
          code(c.jsonPath),
          ...(priority ? [String(c.priority ?? 0)] : []),
          ...(description ? [c.description ?? ''] : []),
        ]),
      ),
      '',
    );
  } else out.push('None: `kubectl get` shows NAME and AGE.', '');

  const schema = v.schema?.openAPIV3Schema;
  const rows: FieldRow[] = [];
  const rules: RuleRow[] = [];
  if (schema)
    for (const top of ['spec', 'status'])
      if (schema.properties?.[top])
        walk(schema.properties[top], top, schema.required?.includes(top) ?? false, rows, rules);
  out.push(
    `${h} Fields`,
    '',
    '`[]` stands for every item of a list. The constraints are the OpenAPI ones the API server enforces; `(exclusive)`',
    "is OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` next to `minimum`/`maximum`.",
    '',
    table(
      ['field', 'type', 'required', 'default', 'constraints', 'description'],
      rows.map((r) => [
        code(r.path),
        r.type,
        r.required ? 'yes' : '',
        r.default,
        r.constraints.join('; '),
        r.description,
      ]),
    ),
    '',
    `${h} Validation rules (CEL)`,
    '',
  );
  if (rules.length)
    out.push(
      'Checked by the API server on create and update (`x-kubernetes-validations`); `self` is the value at the path,',
      '`oldSelf` its previous value (a rule that uses `oldSelf` is checked on updates only).',
      '',
      table(
        ['path', 'rule', 'message'],
        rules.map((r) => [code(r.path), code(r.rule), r.message]),
      ),
      '',
    );
  else out.push('None.', '');
  return out.join('\n');
}

function renderCrd(crd: Crd, comment: string): string {
  const { group, names, scope, versions } = crd.spec;
  const out: string[] = [`## ${names.kind}`, ''];
  if (comment) out.push(comment, '');
  out.push(
    table(
      ['property', 'value'],
      [
        ['CRD', code(crd.metadata.name)],
        ['group', code(group)],
        ...versions.map((v) => [`version ${code(v.name)}`, `${code(`${group}/${v.name}`)}: ${versionSummary(v)}`]),
        ['kind / list kind', `${code(names.kind)} / ${names.listKind ? code(names.listKind) : ''}`],
        ['plural / singular', `${code(names.plural)} / ${names.singular ? code(names.singular) : ''}`],
        ['short names', names.shortNames?.length ? names.shortNames.map(code).join(', ') : 'none'],
        ['categories', names.categories?.length ? names.categories.map(code).join(', ') : 'none'],
        ['scope', scope],
      ],
    ),
    '',
  );
  if (versions.length === 1) out.push(renderVersion(crd, versions[0]!, '###'));
  else for (const v of versions) out.push(`### ${names.kind} ${v.name}`, '', renderVersion(crd, v, '####'));
  return out.join('\n');
}

/** The reference as Markdown, from every `*.yaml` CRD in `dir`, ordered by kind. */
export function renderCrdReference(dir = CRDS_DIR): string {
  const crds = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .map((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      return { file: f, crd: parse(text) as Crd, comment: leadingComment(text) };
    })
    .sort((a, b) =>
      a.crd.spec.names.kind < b.crd.spec.names.kind ? -1 : a.crd.spec.names.kind > b.crd.spec.names.kind ? 1 : 0,
    );
  const out = [
    '# Custom resource reference',
    '',
    '<!-- Generated by scripts/crd-reference.ts from crds/*.yaml. Do not edit; regenerate with `npm run docs:crd`. -->',
    '',
    '_Generated by [`scripts/crd-reference.ts`](../scripts/crd-reference.ts) from the CRDs in [`crds/`](../crds); do',
    'not edit by hand. Regenerate with `npm run docs:crd`; `npm run docs:crd -- --check` fails when this file is stale._',
    '',
    'How the operator acts on these resources: [operator.md](operator.md).',
    '',
    ...crds.map(
      ({ file, crd }) =>
        `- [${crd.spec.names.kind}](#${crd.spec.names.kind.toLowerCase()}) ([\`crds/${file}\`](../crds/${file}))`,
    ),
    '',
    ...crds.map(({ crd, comment }) => renderCrd(crd, comment)),
  ];
  return `${out.join('\n').trimEnd()}\n`;
}

/** Compares a committed reference with a fresh rendering: undefined when equal, else what is wrong. */
export function checkCrdReference(file = OUTPUT, dir = CRDS_DIR): string | undefined {
  let committed: string | undefined;
  try {
    committed = readFileSync(file, 'utf8');
  } catch {
    committed = undefined;
  }
  if (committed === renderCrdReference(dir)) return undefined;
  return `docs/crd-reference.md is ${committed === undefined ? 'missing' : 'out of date with crds/'}: run \`npm run docs:crd\` and commit the result`;
}

function main(argv: string[]): void {
  if (argv.includes('--check')) {
    const problem = checkCrdReference();
    if (problem) {
      process.stderr.write(`${problem}\n`);
      process.exit(1);
    }
    process.stdout.write('docs/crd-reference.md is up to date\n');
    return;
  }
  const text = renderCrdReference();
  writeFileSync(OUTPUT, text);
  process.stdout.write(`wrote docs/crd-reference.md (${text.length} bytes)\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main(process.argv.slice(2));
