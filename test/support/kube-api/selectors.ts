/** Label and field selectors with the apimachinery grammar (labels.Parse, fields.ParseSelector). */
import { badRequest } from './errors.js';
import { getPath, type KubeObject } from './util.js';

export type LabelOp = 'in' | 'notin' | 'exists' | 'doesnotexist' | 'gt' | 'lt';

export interface LabelRequirement {
  key: string;
  op: LabelOp;
  values: string[];
}

/** Splits on commas outside parentheses. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const KEY = '[A-Za-z0-9][-A-Za-z0-9_./]*';
const VALUE = '[-A-Za-z0-9_.]*';

export function parseLabelSelector(selector: string | undefined): LabelRequirement[] {
  if (!selector?.trim()) return [];
  const reqs: LabelRequirement[] = [];
  for (const raw of splitTopLevel(selector)) {
    const term = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = term.match(new RegExp(`^!\\s*(${KEY})$`)))) {
      reqs.push({ key: m[1]!, op: 'doesnotexist', values: [] });
    } else if ((m = term.match(new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`)))) {
      reqs.push({ key: m[1]!, op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]!] });
    } else if ((m = term.match(new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`)))) {
      const values = m[3]!.split(',').map((v) => v.trim());
      if (values.some((v) => !new RegExp(`^${VALUE}$`).test(v)))
        throw badRequest(`unable to parse requirement: invalid label value in: ${term}`);
      reqs.push({ key: m[1]!, op: m[2] as LabelOp, values });
    } else if ((m = term.match(new RegExp(`^(${KEY})\\s*([<>])\\s*(-?\\d+)$`)))) {
      reqs.push({ key: m[1]!, op: m[2] === '>' ? 'gt' : 'lt', values: [m[3]!] });
    } else if ((m = term.match(new RegExp(`^(${KEY})$`)))) {
      reqs.push({ key: m[1]!, op: 'exists', values: [] });
    } else if (new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\([^)]*$`).test(term)) {
      // An unterminated set: Go's lexer reaches the end of the input (token '') where a value or ')' must come.
      throw badRequest(`unable to parse requirement: found '', expected: ',', ')' or identifier`);
    } else {
      throw badRequest(`unable to parse requirement: found '${term}', expected: identifier or operator`);
    }
  }
  return reqs;
}

export function matchesLabels(reqs: LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'exists':
        return has;
      case 'doesnotexist':
        return !has;
      case 'gt':
        return has && /^-?\d+$/.test(v!) && Number(v) > Number(r.values[0]);
      case 'lt':
        return has && /^-?\d+$/.test(v!) && Number(v) < Number(r.values[0]);
    }
    return false;
  });
}

/** Matches a `matchLabels` + `matchExpressions` LabelSelector object (as in Deployment.spec.selector). */
export function matchesLabelSelectorObject(selector: unknown, labels: Record<string, string> | undefined): boolean {
  const s = (selector ?? {}) as {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  };
  const reqs: LabelRequirement[] = Object.entries(s.matchLabels ?? {}).map(([key, v]) => ({
    key,
    op: 'in',
    values: [v],
  }));
  for (const e of s.matchExpressions ?? []) {
    const op = { In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: 'doesnotexist' }[e.operator] as LabelOp;
    reqs.push({ key: e.key, op, values: e.values ?? [] });
  }
  return matchesLabels(reqs, labels);
}

export interface FieldRequirement {
  field: string;
  equal: boolean;
  value: string;
}

/** Splits `a=b,c!=d` honouring the `\,` `\=` `\!` `\\` escapes of fields.ParseSelector. */
export function parseFieldSelector(selector: string | undefined): FieldRequirement[] {
  if (!selector?.trim()) return [];
  const terms: string[] = [];
  let cur = '';
  for (let i = 0; i < selector.length; i++) {
    const ch = selector[i]!;
    if (ch === '\\' && i + 1 < selector.length) {
      cur += ch + selector[++i];
    } else if (ch === ',') {
      terms.push(cur);
      cur = '';
    } else cur += ch;
  }
  terms.push(cur);
  const unescapeValue = (s: string) => s.replace(/\\(.)/g, '$1');
  return terms
    .filter((t) => t.trim() !== '')
    .map((term) => {
      const m = term.match(/^((?:[^=!\\]|\\.)+?)\s*(==|=|!=)\s*((?:[^\\]|\\.)*)$/);
      if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
      return { field: m[1]!.trim(), equal: m[2] !== '!=', value: unescapeValue(m[3]!) };
    });
}

const fieldValue = (o: KubeObject, field: string): string => {
  const path = field === 'source' ? 'source.component' : field;
  const v = getPath(o, path);
  if (v === undefined || v === null) return '';
  return String(v);
};

/** Throws 400 when a field is not selectable for this resource (as the apiserver does). */
export function checkFieldSelector(reqs: FieldRequirement[], allowed: string[]): void {
  for (const r of reqs) {
    if (r.field === 'metadata.name' || r.field === 'metadata.namespace' || allowed.includes(r.field)) continue;
    throw badRequest(`field label not supported: ${r.field}`);
  }
}

export const matchesFields = (reqs: FieldRequirement[], o: KubeObject) =>
  reqs.every((r) => (fieldValue(o, r.field) === r.value) === r.equal);
