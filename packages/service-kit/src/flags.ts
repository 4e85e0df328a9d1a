/**
 * Service configuration: every option is a `--flag` with a `FEDNANO_*` environment-variable equivalent (flags win),
 * so the same binary is configured by hand, by `fednano run`, and by a Pod spec.
 */
export type FlagType = 'string' | 'number' | 'boolean';

export interface FlagSpec {
  type: FlagType;
  description: string;
  default?: string | number | boolean;
  required?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<S extends FlagSpec> = S['type'] extends 'number' ? number : S['type'] extends 'boolean' ? boolean : string;

export type ParsedFlags<S extends FlagSpecs> = {
  [K in keyof S]: S[K]['required'] extends true
    ? ValueOf<S[K]>
    : S[K]['default'] extends string | number | boolean
      ? ValueOf<S[K]>
      : ValueOf<S[K]> | undefined;
};

export class FlagError extends Error {
  override name = 'FlagError';
}

/** `model-path` -> `FEDNANO_MODEL_PATH`. */
export const envName = (flag: string): string => `FEDNANO_${flag.toUpperCase().replaceAll('-', '_')}`;

function convert(flag: string, spec: FlagSpec, raw: string, source: string): string | number | boolean {
  if (spec.type === 'string') return raw;
  if (spec.type === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new FlagError(`${source} must be a number, got '${raw}'`);
    return n;
  }
  if (['true', '1', 'yes', ''].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  throw new FlagError(`--${flag} must be true or false, got '${raw}' (from ${source})`);
}

/** Parses `--name value` / `--name=value` / `--flag` (booleans), then the environment, then defaults. */
export function parseFlags<S extends FlagSpecs>(
  specs: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedFlags<S> {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new FlagError(`unexpected argument '${arg}'; options look like --name value`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs[name];
    if (!spec) throw new FlagError(`unknown option --${name}; see --help`);
    if (eq !== -1) given.set(name, arg.slice(eq + 1));
    else if (spec.type === 'boolean' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--')))
      given.set(name, 'true');
    else {
      const value = argv[++i];
      if (value === undefined) throw new FlagError(`--${name} needs a value`);
      given.set(name, value);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const fromFlag = given.get(name);
    const fromEnv = env[envName(name)];
    if (fromFlag !== undefined) out[name] = convert(name, spec, fromFlag, `--${name}`);
    else if (fromEnv !== undefined) out[name] = convert(name, spec, fromEnv, envName(name));
    else if (spec.default !== undefined) out[name] = spec.default;
    else if (spec.required) throw new FlagError(`--${name} (or ${envName(name)}) is required: ${spec.description}`);
  }
  return out as ParsedFlags<S>;
}

/** The `--help` text: every flag with its environment variable, default and meaning. */
export function flagHelp(command: string, summary: string, specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const value = s.type === 'boolean' ? '' : ` <${s.type}>`;
    const dflt = s.default !== undefined ? ` (default: ${s.default})` : s.required ? ' (required)' : '';
    return `  --${name}${value}\n      ${envName(name)}  ${s.description}${dflt}`;
  });
  return `Usage: ${command} [options]\n\n${summary}\n\nOptions (flag, then environment variable):\n${rows.join('\n')}\n  --help\n`;
}

/**
 * A service's command line: `--help` prints the flags and exits 0; otherwise the parsed flags, after `check` (for
 * rules between flags). A bad flag prints one line, `<command>: <what is wrong>`, and exits 2.
 */
export function serviceFlags<S extends FlagSpecs>(
  command: string,
  summary: string,
  specs: S,
  argv: readonly string[],
  check: (flags: ParsedFlags<S>) => void = () => {},
): ParsedFlags<S> {
  if (argv.includes('--help')) {
    process.stdout.write(flagHelp(command, summary, specs));
    process.exit(0);
  }
  try {
    const flags = parseFlags(specs, argv);
    check(flags);
    return flags;
  } catch (e) {
    process.stderr.write(`${command}: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
