/**
 * A small CEL (Common Expression Language) evaluator: the subset that CRD `x-kubernetes-validations` rules use.
 *
 * Supported: literals (int, double, string, bool, null, lists, maps), `self` / `oldSelf` and other variables, field
 * selection, indexing, `has()`, `size()`, the arithmetic, comparison, `in`, logical (`!`, `&&`, `||` with CEL's
 * error absorption) and conditional operators, string methods (`startsWith`, `endsWith`, `contains`, `matches`,
 * `lowerAscii`, `upperAscii`, `size`), conversions (`int`, `double`, `string`) and the macros `all`, `exists`,
 * `exists_one`, `map`, `filter`. Not supported: types beyond JSON (timestamps, durations, quantities), uint
 * arithmetic, optional types.
 */

export class CelError extends Error {}

type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'ident'; name: string }
  | { k: 'select'; obj: Node; field: string }
  | { k: 'has'; obj: Node; field: string }
  | { k: 'index'; obj: Node; idx: Node }
  | { k: 'call'; fn: string; target?: Node; args: Node[] }
  | { k: 'macro'; fn: string; target: Node; v: string; body: Node; body2?: Node }
  | { k: 'unary'; op: string; x: Node }
  | { k: 'binary'; op: string; l: Node; r: Node }
  | { k: 'cond'; c: Node; t: Node; f: Node }
  | { k: 'list'; items: Node[] }
  | { k: 'map'; entries: [Node, Node][] };

interface Token {
  t: 'num' | 'str' | 'id' | 'op' | 'eof';
  v: string;
  n?: number;
  pos: number;
}

const OPS = [
  '==',
  '!=',
  '<=',
  '>=',
  '&&',
  '||',
  '<',
  '>',
  '!',
  '+',
  '-',
  '*',
  '/',
  '%',
  '?',
  ':',
  '.',
  ',',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
];

function unescapeString(body: string): string {
  return body.replace(/\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)/g, (_, e: string) => {
    if (e[0] === 'u' || e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    return { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v' }[e] ?? e;
  });
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const rest = src.slice(i);
    let m: RegExpMatchArray | null;
    if (
      (m = rest.match(/^(0x[0-9a-fA-F]+|\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?|\d+)(u|U)?/))
    ) {
      out.push({ t: 'num', v: m[1]!, n: Number(m[1]), pos: i });
      i += m[0].length;
      continue;
    }
    if ((m = rest.match(/^[rR]?('''[\s\S]*?'''|"""[\s\S]*?"""|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")/))) {
      const raw = m[0].startsWith('r') || m[0].startsWith('R');
      const q = m[1]!;
      const body = q.startsWith("'''") || q.startsWith('"""') ? q.slice(3, -3) : q.slice(1, -1);
      out.push({ t: 'str', v: raw ? body : unescapeString(body), pos: i });
      i += m[0].length;
      continue;
    }
    if ((m = rest.match(/^[A-Za-z_][A-Za-z0-9_]*/))) {
      out.push({ t: 'id', v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    const op = OPS.find((o) => rest.startsWith(o));
    if (!op) throw new CelError(`Syntax error: token recognition error at: '${ch}' (position ${i})`);
    out.push({ t: 'op', v: op, pos: i });
    i += op.length;
  }
  out.push({ t: 'eof', v: '', pos: src.length });
  return out;
}

const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

class Parser {
  private i = 0;
  constructor(private readonly toks: Token[]) {}

  private peek() {
    return this.toks[this.i]!;
  }
  private next() {
    return this.toks[this.i++]!;
  }
  private isOp(v: string) {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }
  private expect(v: string) {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) throw new CelError(`Syntax error: expected '${v}' at position ${t.pos}`);
  }

  parseAll(): Node {
    const n = this.expr();
    if (this.peek().t !== 'eof')
      throw new CelError(`Syntax error: unexpected '${this.peek().v}' at ${this.peek().pos}`);
    return n;
  }

  private expr(): Node {
    const c = this.or();
    if (this.isOp('?')) {
      this.next();
      const t = this.or();
      this.expect(':');
      const f = this.expr();
      return { k: 'cond', c, t, f };
    }
    return c;
  }
  private or(): Node {
    let l = this.and();
    while (this.isOp('||')) {
      this.next();
      l = { k: 'binary', op: '||', l, r: this.and() };
    }
    return l;
  }
  private and(): Node {
    let l = this.rel();
    while (this.isOp('&&')) {
      this.next();
      l = { k: 'binary', op: '&&', l, r: this.rel() };
    }
    return l;
  }
  private rel(): Node {
    let l = this.add();
    for (;;) {
      const t = this.peek();
      if (t.t === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(t.v)) {
        this.next();
        l = { k: 'binary', op: t.v, l, r: this.add() };
      } else if (t.t === 'id' && t.v === 'in') {
        this.next();
        l = { k: 'binary', op: 'in', l, r: this.add() };
      } else return l;
    }
  }
  private add(): Node {
    let l = this.mul();
    while (this.isOp('+') || this.isOp('-')) {
      const op = this.next().v;
      l = { k: 'binary', op, l, r: this.mul() };
    }
    return l;
  }
  private mul(): Node {
    let l = this.unary();
    while (this.isOp('*') || this.isOp('/') || this.isOp('%')) {
      const op = this.next().v;
      l = { k: 'binary', op, l, r: this.unary() };
    }
    return l;
  }
  private unary(): Node {
    if (this.isOp('!') || this.isOp('-')) {
      const op = this.next().v;
      return { k: 'unary', op, x: this.unary() };
    }
    return this.member();
  }
  private args(): Node[] {
    const args: Node[] = [];
    this.expect('(');
    if (!this.isOp(')')) {
      do args.push(this.expr());
      while (this.isOp(',') && this.next());
    }
    this.expect(')');
    return args;
  }
  private member(): Node {
    let n = this.primary();
    for (;;) {
      if (this.isOp('.')) {
        this.next();
        const id = this.next();
        if (id.t !== 'id') throw new CelError(`Syntax error: expected identifier at ${id.pos}`);
        if (this.isOp('(')) {
          if (MACROS.has(id.v)) {
            this.expect('(');
            const v = this.next();
            if (v.t !== 'id') throw new CelError(`Syntax error: ${id.v}() needs a variable name`);
            this.expect(',');
            const body = this.expr();
            let body2: Node | undefined;
            if (this.isOp(',')) {
              this.next();
              body2 = this.expr();
            }
            this.expect(')');
            n = { k: 'macro', fn: id.v, target: n, v: v.v, body, body2 };
          } else n = { k: 'call', fn: id.v, target: n, args: this.args() };
        } else n = { k: 'select', obj: n, field: id.v };
      } else if (this.isOp('[')) {
        this.next();
        const idx = this.expr();
        this.expect(']');
        n = { k: 'index', obj: n, idx };
      } else return n;
    }
  }
  private primary(): Node {
    const t = this.next();
    if (t.t === 'num') return { k: 'lit', v: t.n };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'id') {
      if (t.v === 'true') return { k: 'lit', v: true };
      if (t.v === 'false') return { k: 'lit', v: false };
      if (t.v === 'null') return { k: 'lit', v: null };
      if (this.isOp('(')) {
        if (t.v === 'has') {
          this.expect('(');
          const arg = this.expr();
          this.expect(')');
          if (arg.k !== 'select') throw new CelError('invalid argument to has() macro');
          return { k: 'has', obj: arg.obj, field: arg.field };
        }
        return { k: 'call', fn: t.v, args: this.args() };
      }
      return { k: 'ident', name: t.v };
    }
    if (t.t === 'op' && t.v === '(') {
      const e = this.expr();
      this.expect(')');
      return e;
    }
    if (t.t === 'op' && t.v === '[') {
      const items: Node[] = [];
      if (!this.isOp(']')) {
        do items.push(this.expr());
        while (this.isOp(',') && this.next() && !this.isOp(']'));
      }
      this.expect(']');
      return { k: 'list', items };
    }
    if (t.t === 'op' && t.v === '{') {
      const entries: [Node, Node][] = [];
      if (!this.isOp('}')) {
        do {
          const key = this.expr();
          this.expect(':');
          entries.push([key, this.expr()]);
        } while (this.isOp(',') && this.next() && !this.isOp('}'));
      }
      this.expect('}');
      return { k: 'map', entries };
    }
    throw new CelError(`Syntax error: unexpected '${t.v || 'end of input'}' at position ${t.pos}`);
  }
}

export interface CompiledCel {
  source: string;
  ast: Node;
  /** Transition rules (that read oldSelf) only run on updates. */
  usesOldSelf: boolean;
}

const cache = new Map<string, CompiledCel>();

export function compileCel(source: string): CompiledCel {
  let c = cache.get(source);
  if (!c) {
    const ast = new Parser(tokenize(source)).parseAll();
    c = { source, ast, usesOldSelf: mentions(ast, 'oldSelf') };
    cache.set(source, c);
  }
  return c;
}

function mentions(n: Node, name: string): boolean {
  switch (n.k) {
    case 'ident':
      return n.name === name;
    case 'lit':
      return false;
    case 'select':
    case 'has':
      return mentions(n.obj, name);
    case 'index':
      return mentions(n.obj, name) || mentions(n.idx, name);
    case 'call':
      return (n.target ? mentions(n.target, name) : false) || n.args.some((a) => mentions(a, name));
    case 'macro':
      return mentions(n.target, name) || mentions(n.body, name) || (n.body2 ? mentions(n.body2, name) : false);
    case 'unary':
      return mentions(n.x, name);
    case 'binary':
      return mentions(n.l, name) || mentions(n.r, name);
    case 'cond':
      return mentions(n.c, name) || mentions(n.t, name) || mentions(n.f, name);
    case 'list':
      return n.items.some((x) => mentions(x, name));
    case 'map':
      return n.entries.some(([k, v]) => mentions(k, name) || mentions(v, name));
  }
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeName(v: unknown): string {
  if (v === null) return 'null_type';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  return 'map';
}

function celEquals(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => celEquals(x, b[i]));
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && celEquals(a[k], b[k]));
  }
  return a === b;
}

const noOverload = (fn: string, ...args: unknown[]) =>
  new CelError(`no such overload: ${fn}(${args.map(typeName).join(', ')})`);

function compare(op: string, a: unknown, b: unknown): boolean {
  const ok =
    (typeof a === 'number' && typeof b === 'number') ||
    (typeof a === 'string' && typeof b === 'string') ||
    (typeof a === 'boolean' && typeof b === 'boolean');
  if (!ok) throw noOverload(op, a, b);
  const x = a as number;
  const y = b as number;
  switch (op) {
    case '<':
      return x < y;
    case '<=':
      return x <= y;
    case '>':
      return x > y;
    default:
      return x >= y;
  }
}

type Env = Record<string, unknown>;

function evalNode(n: Node, env: Env): unknown {
  switch (n.k) {
    case 'lit':
      return n.v;
    case 'ident':
      if (!(n.name in env)) throw new CelError(`undeclared reference to '${n.name}'`);
      return env[n.name];
    case 'select': {
      const o = evalNode(n.obj, env);
      if (!isMap(o)) throw new CelError(`no such key: ${n.field}`);
      if (!(n.field in o) || o[n.field] === undefined) throw new CelError(`no such key: ${n.field}`);
      return o[n.field];
    }
    case 'has': {
      const o = evalNode(n.obj, env);
      if (!isMap(o)) throw new CelError(`invalid type for field selection.`);
      return n.field in o && o[n.field] !== undefined && o[n.field] !== null;
    }
    case 'index': {
      const o = evalNode(n.obj, env);
      const i = evalNode(n.idx, env);
      if (Array.isArray(o)) {
        if (typeof i !== 'number' || !Number.isInteger(i)) throw noOverload('_[_]', o, i);
        if (i < 0 || i >= o.length) throw new CelError(`index out of bounds: ${i}`);
        return o[i];
      }
      if (isMap(o)) {
        const k = String(i);
        if (!(k in o)) throw new CelError(`no such key: ${k}`);
        return o[k];
      }
      throw noOverload('_[_]', o, i);
    }
    case 'unary': {
      const x = evalNode(n.x, env);
      if (n.op === '!') {
        if (typeof x !== 'boolean') throw noOverload('!_', x);
        return !x;
      }
      if (typeof x !== 'number') throw noOverload('-_', x);
      return -x;
    }
    case 'cond': {
      const c = evalNode(n.c, env);
      if (typeof c !== 'boolean') throw noOverload('_?_:_', c);
      return c ? evalNode(n.t, env) : evalNode(n.f, env);
    }
    case 'list':
      return n.items.map((x) => evalNode(x, env));
    case 'map':
      return Object.fromEntries(n.entries.map(([k, v]) => [String(evalNode(k, env)), evalNode(v, env)]));
    case 'binary':
      return evalBinary(n.op, n.l, n.r, env);
    case 'call':
      return evalCall(n.fn, n.target ? evalNode(n.target, env) : undefined, n.target !== undefined, n.args, env);
    case 'macro':
      return evalMacro(n, env);
  }
}

/** `&&` and `||` are commutative in CEL: an error on one side is absorbed when the other side decides. */
function logical(op: '&&' | '||', l: Node, r: Node, env: Env): boolean {
  const decisive = op === '||';
  let lErr: unknown;
  let lv: unknown;
  try {
    lv = evalNode(l, env);
    if (typeof lv !== 'boolean') throw noOverload(`_${op}_`, lv);
    if (lv === decisive) return decisive;
  } catch (e) {
    lErr = e;
  }
  const rv = evalNode(r, env);
  if (typeof rv !== 'boolean') throw noOverload(`_${op}_`, rv);
  if (rv === decisive) return decisive;
  if (lErr) throw lErr;
  return !decisive;
}

function evalBinary(op: string, ln: Node, rn: Node, env: Env): unknown {
  if (op === '&&' || op === '||') return logical(op, ln, rn, env);
  const a = evalNode(ln, env);
  const b = evalNode(rn, env);
  switch (op) {
    case '==':
      return celEquals(a, b);
    case '!=':
      return !celEquals(a, b);
    case '<':
    case '<=':
    case '>':
    case '>=':
      return compare(op, a, b);
    case 'in':
      if (Array.isArray(b)) return b.some((x) => celEquals(x, a));
      if (isMap(b)) return typeof a === 'string' && a in b;
      throw noOverload('@in', a, b);
    case '+':
      if (typeof a === 'number' && typeof b === 'number') return a + b;
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
      throw noOverload('_+_', a, b);
    case '-':
    case '*':
    case '/':
    case '%': {
      if (typeof a !== 'number' || typeof b !== 'number') throw noOverload(`_${op}_`, a, b);
      if (op === '-') return a - b;
      if (op === '*') return a * b;
      const ints = Number.isInteger(a) && Number.isInteger(b);
      if ((op === '/' || op === '%') && ints && b === 0)
        throw new CelError(op === '/' ? 'division by zero' : 'modulus by zero');
      if (op === '/') return ints ? Math.trunc(a / b) : a / b;
      return a % b;
    }
  }
  throw new CelError(`unsupported operator ${op}`);
}

function evalCall(fn: string, target: unknown, hasTarget: boolean, argNodes: Node[], env: Env): unknown {
  const args = argNodes.map((a) => evalNode(a, env));
  const all = hasTarget ? [target, ...args] : args;
  const [x, y] = all;
  switch (fn) {
    case 'size':
      if (typeof x === 'string') return [...x].length;
      if (Array.isArray(x)) return x.length;
      if (isMap(x)) return Object.keys(x).length;
      throw noOverload('size', x);
    case 'int':
      if (typeof x === 'number') return Math.trunc(x);
      if (typeof x === 'string' && /^-?\d+$/.test(x)) return Number(x);
      throw noOverload('int', x);
    case 'double':
      if (typeof x === 'number') return x;
      if (typeof x === 'string' && !Number.isNaN(Number(x))) return Number(x);
      throw noOverload('double', x);
    case 'string':
      if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') return String(x);
      throw noOverload('string', x);
    case 'bool':
      if (typeof x === 'boolean') return x;
      if (x === 'true' || x === 'false') return x === 'true';
      throw noOverload('bool', x);
    case 'startsWith':
    case 'endsWith':
    case 'contains':
    case 'matches':
      if (typeof x !== 'string' || typeof y !== 'string') throw noOverload(fn, x, y);
      if (fn === 'startsWith') return x.startsWith(y);
      if (fn === 'endsWith') return x.endsWith(y);
      if (fn === 'contains') return x.includes(y);
      return new RegExp(y).test(x);
    case 'lowerAscii':
    case 'upperAscii':
    case 'trim':
      if (typeof x !== 'string') throw noOverload(fn, x);
      return fn === 'lowerAscii' ? x.toLowerCase() : fn === 'upperAscii' ? x.toUpperCase() : x.trim();
    case 'isSorted':
      if (!Array.isArray(x)) throw noOverload(fn, x);
      return x.every((v, i) => i === 0 || compare('<=', x[i - 1], v));
    case 'sum':
      if (!Array.isArray(x)) throw noOverload(fn, x);
      return x.reduce((s: number, v) => s + (v as number), 0);
    case 'min':
    case 'max': {
      if (!Array.isArray(x) || x.length === 0) throw noOverload(fn, x);
      return x.reduce((m, v) => (compare(fn === 'min' ? '<' : '>', v, m) ? v : m));
    }
    case 'type':
      return typeName(x);
  }
  throw new CelError(`undeclared reference to '${fn}'`);
}

function evalMacro(n: Extract<Node, { k: 'macro' }>, env: Env): unknown {
  const target = evalNode(n.target, env);
  const items = Array.isArray(target) ? target : isMap(target) ? Object.keys(target) : undefined;
  if (!items) throw noOverload(n.fn, target);
  const run = (node: Node, item: unknown) => evalNode(node, { ...env, [n.v]: item });
  const pred = (item: unknown) => {
    const r = run(n.body, item);
    if (typeof r !== 'boolean') throw noOverload(n.fn, r);
    return r;
  };
  switch (n.fn) {
    case 'all': {
      let err: unknown;
      for (const it of items) {
        try {
          if (!pred(it)) return false;
        } catch (e) {
          err ??= e;
        }
      }
      if (err) throw err;
      return true;
    }
    case 'exists': {
      let err: unknown;
      for (const it of items) {
        try {
          if (pred(it)) return true;
        } catch (e) {
          err ??= e;
        }
      }
      if (err) throw err;
      return false;
    }
    case 'exists_one':
      return items.filter(pred).length === 1;
    case 'filter':
      return items.filter(pred);
    case 'map':
      if (n.body2) return items.filter(pred).map((it) => run(n.body2!, it));
      return items.map((it) => run(n.body, it));
  }
  throw new CelError(`unknown macro ${n.fn}`);
}

/** Evaluates an expression with the given variables (usually `self` and `oldSelf`). */
export function evaluateCel(expr: string | CompiledCel, vars: Record<string, unknown>): unknown {
  const c = typeof expr === 'string' ? compileCel(expr) : expr;
  return evalNode(c.ast, vars);
}
