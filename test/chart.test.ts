import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { parse, parseDocument } from 'yaml';
import { type Lockfile, RUNTIME_ROOT_PACKAGES, resolveDependency, runtimeClosure } from '../docker/prune.js';

/**
 * Static checks of the Helm chart (charts/fednano) and the images (docker/). No helm binary and no container engine
 * exist here, so nothing is rendered or built: the chart's CRDs, RBAC rules, values and schema, and the Dockerfiles
 * are checked as files, and the image prune is checked against package-lock.json and the sources' imports.
 */

const CHART = 'charts/fednano';
const read = (path: string): string => readFileSync(path, 'utf8');

/** The operator's Kubernetes API usage: what the chart must grant, exactly (apiGroup, resource, verbs). */
const OPERATOR_API_USAGE: [group: string, resource: string, verbs: string[]][] = [
  ['fednano.io', 'federations', ['get', 'list', 'watch', 'update', 'patch']],
  ['fednano.io', 'federationrounds', ['get', 'list', 'watch', 'update', 'patch', 'create', 'delete']],
  ['fednano.io', 'federations/status', ['get', 'update', 'patch']],
  ['fednano.io', 'federationrounds/status', ['get', 'update', 'patch']],
  ['fednano.io', 'federations/finalizers', ['update']],
  ['fednano.io', 'federationrounds/finalizers', ['update']],
  ['apps', 'deployments', ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']],
  ['', 'services', ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']],
  ['', 'pods', ['get', 'list', 'watch', 'create', 'delete']],
  ['', 'secrets', ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']],
  ['', 'events', ['create', 'patch']],
  ['events.k8s.io', 'events', ['create', 'patch']],
  ['coordination.k8s.io', 'leases', ['get', 'create', 'update']],
];

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** The `rules:` blocks of a template: from `rules:` to the next line at column 0 that is not a comment. */
function rulesBlocks(template: string): string[] {
  const lines = template.split('\n');
  const blocks: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== 'rules:') continue;
    let end = i + 1;
    while (end < lines.length && (lines[end] === '' || /^\s/.test(lines[end]!) || lines[end]!.startsWith('#'))) end++;
    blocks.push(lines.slice(i, end).join('\n'));
    i = end - 1;
  }
  return blocks;
}

describe('chart: CRDs', () => {
  test('charts/fednano/crds holds byte-identical copies of crds/', () => {
    const source = readdirSync('crds').filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(readdirSync(join(CHART, 'crds')).sort(), source.sort());
    for (const crd of ['fednano.io_federations.yaml', 'fednano.io_federationrounds.yaml'])
      assert.ok(source.includes(crd), crd);
    for (const file of source) {
      assert.ok(
        readFileSync(join('crds', file)).equals(readFileSync(join(CHART, 'crds', file))),
        `${CHART}/crds/${file} differs from crds/${file}: copy it again (cp crds/*.yaml ${CHART}/crds/)`,
      );
    }
  });
});

describe('chart: RBAC', () => {
  const template = read(join(CHART, 'templates/rbac.yaml'));
  const blocks = rulesBlocks(template);

  test('the rules blocks hold no template actions, wildcards, resourceNames or nonResourceURLs', () => {
    assert.equal(blocks.length, 2, 'one block for the operator (Role or ClusterRole), one for the Lease');
    for (const block of blocks) {
      assert.doesNotMatch(block, /\{\{/, 'rules must be static so that this test sees what Kubernetes gets');
      const { rules } = parse(block) as { rules: Record<string, unknown>[] };
      for (const rule of rules) {
        assert.deepEqual(Object.keys(rule).sort(), ['apiGroups', 'resources', 'verbs'], JSON.stringify(rule));
        for (const list of Object.values(rule)) {
          assert.ok(Array.isArray(list) && list.length > 0, JSON.stringify(rule));
          for (const item of list) assert.ok(typeof item === 'string' && !item.includes('*'), JSON.stringify(rule));
        }
      }
    }
  });

  test('the rules grant exactly the operator API usage: nothing missing, nothing extra, nothing twice', () => {
    const granted: string[] = [];
    for (const block of blocks) {
      for (const rule of (parse(block) as { rules: PolicyRule[] }).rules) {
        for (const group of rule.apiGroups)
          for (const resource of rule.resources)
            for (const verb of rule.verbs) granted.push(`${group}|${resource}|${verb}`);
      }
    }
    const expected = OPERATOR_API_USAGE.flatMap(([group, resource, verbs]) =>
      verbs.map((verb) => `${group}|${resource}|${verb}`),
    );
    assert.equal(new Set(granted).size, granted.length, 'a permission is granted twice');
    assert.deepEqual(granted.sort(), expected.sort());
  });

  test('Lease access sits in its own namespaced Role; the rest follows watchNamespace', () => {
    const [main, lease] = blocks;
    assert.doesNotMatch(main!, /leases/);
    assert.match(lease!, /coordination\.k8s\.io/);
    const leaseRole = template.slice(0, template.indexOf(lease!));
    assert.match(leaseRole.slice(leaseRole.lastIndexOf('apiVersion:')), /kind: Role\n/);
    assert.match(template, /kind: \{\{ if \$namespaced \}\}Role\{\{ else \}\}ClusterRole\{\{ end \}\}/);
    assert.match(template, /\$namespaced := ne \.Values\.watchNamespace ""/);
  });
});

describe('chart: values and schema', () => {
  const schema = JSON.parse(read(join(CHART, 'values.schema.json'))) as Record<string, unknown>;
  const values = parse(read(join(CHART, 'values.yaml'))) as Record<string, unknown>;
  const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
  /** values.yaml with `changes` applied: [dotted path, value], where an undefined value deletes the key. */
  const withValues = (...changes: [path: string, value: unknown][]): Record<string, unknown> => {
    const copy = structuredClone(values);
    for (const [path, value] of changes) {
      const keys = path.split('.');
      let at = copy;
      for (const key of keys.slice(0, -1)) at = at[key] as Record<string, unknown>;
      if (value === undefined) delete at[keys.at(-1)!];
      else at[keys.at(-1)!] = value;
    }
    return copy;
  };

  test('the schema is draft-07 and strict at the top level', () => {
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
    assert.equal(schema.additionalProperties, false);
  });

  test('values.yaml is valid', () => {
    assert.ok(validate(values), JSON.stringify(validate.errors, null, 2));
  });

  const bad: [what: string, path: string, value: unknown][] = [
    ['replicas as a string', 'replicas', '2'],
    ['replicas 0', 'replicas', 0],
    ['an unknown top-level key', 'replica', 2],
    ['an unknown nested key', 'metrics.serviceMonitor.enable', true],
    ['a log level outside the enum', 'logLevel', 'verbose'],
    ['a NATS URL that is not nats:// or tls://', 'nats.url', 'http://nats:4222'],
    ['a missing NATS URL', 'nats.url', undefined],
    ['an uppercase watchNamespace', 'watchNamespace', 'Team-A'],
    ['leaderElection.enabled as a string', 'leaderElection.enabled', 'true'],
    ['an image without repository', 'images.llmHost.repository', undefined],
    ['a pull policy outside the enum', 'images.pullPolicy', 'Sometimes'],
    ['an ops port out of range', 'opsPort', 70000],
    ['a NetworkPolicy peer with an unknown key', 'networkPolicies.nats.peers', [{ podSelectr: {} }]],
    ['an extraEnv entry without a name', 'extraEnv', [{ value: 'x' }]],
  ];
  for (const [what, path, value] of bad) {
    test(`values with ${what} are refused`, () => {
      assert.equal(validate(withValues([path, value])), false);
    });
  }

  test('typical overrides are accepted', () => {
    const ok = withValues(
      ['nats.url', 'tls://nats-0.nats:4222,tls://nats-1.nats:4222'],
      ['nats.credentialsSecret.name', 'fednano-nats'],
      ['watchNamespace', 'team-a'],
      ['replicas', 3],
      ['images.registry', 'registry.example.com:5000/fednano'],
      ['images.tag', '0.1.0-rc.1'],
      ['extraEnv', [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=400' }]],
      ['networkPolicies.enabled', true],
      ['networkPolicies.apiServer.peers', [{ ipBlock: { cidr: '10.0.0.1/32' } }]],
      ['metrics.serviceMonitor', { enabled: true, interval: '15s', scrapeTimeout: '5s', labels: { release: 'prom' } }],
    );
    assert.ok(validate(ok), JSON.stringify(validate.errors, null, 2));
  });
});

describe('chart: templates (static)', () => {
  const dir = join(CHART, 'templates');
  const files = readdirSync(dir);
  const sources = new Map(files.map((f) => [f, read(join(dir, f))]));
  const values = parse(read(join(CHART, 'values.yaml'))) as Record<string, unknown>;

  test('the expected templates exist', () => {
    for (const f of [
      '_helpers.tpl',
      'NOTES.txt',
      'deployment.yaml',
      'serviceaccount.yaml',
      'rbac.yaml',
      'service.yaml',
      'servicemonitor.yaml',
      'networkpolicy.yaml',
    ])
      assert.ok(files.includes(f), f);
  });

  test('every .Values path a template reads exists in values.yaml', () => {
    for (const [file, text] of sources) {
      const paths = [
        ...[...text.matchAll(/\.Values((?:\.[A-Za-z_]\w*)+)/g)].map((m) => m[1]!.slice(1)),
        ...[...text.matchAll(/\$np((?:\.[A-Za-z_]\w*)+)/g)].map((m) => `networkPolicies${m[1]}`),
      ];
      for (const path of paths) {
        let at: unknown = values;
        for (const key of path.split('.')) {
          assert.ok(
            at !== null && typeof at === 'object' && key in at,
            `${file}: .Values.${path} is not in values.yaml`,
          );
          at = (at as Record<string, unknown>)[key];
        }
      }
    }
  });

  test('every include names a template defined in _helpers.tpl, and blocks are balanced', () => {
    const defined = new Set([...sources.get('_helpers.tpl')!.matchAll(/define "([^"]+)"/g)].map((m) => m[1]));
    for (const [file, text] of sources) {
      for (const m of text.matchAll(/include "([^"]+)"/g)) assert.ok(defined.has(m[1]), `${file}: ${m[1]}`);
      const opened = [...text.matchAll(/\{\{-?\s*(if|with|range|define)\b/g)].length;
      const closed = [...text.matchAll(/\{\{-?\s*end\s*-?\}\}/g)].length;
      assert.equal(opened, closed, `${file}: ${opened} blocks opened, ${closed} closed`);
    }
  });

  test('the operator Deployment is hardened and wired to the operator flags', () => {
    const deployment = sources.get('deployment.yaml')!;
    for (const needle of [
      'runAsNonRoot: true',
      'runAsUser: 65532',
      'readOnlyRootFilesystem: true',
      'allowPrivilegeEscalation: false',
      'drop: ["ALL"]',
      'type: RuntimeDefault',
      'path: /healthz',
      'path: /readyz',
      '{{- toYaml .Values.resources | nindent 12 }}',
    ])
      assert.ok(deployment.includes(needle), needle);
    const env = [...deployment.matchAll(/- name: (FEDNANO_\w+)/g)].map((m) => m[1]).sort();
    assert.deepEqual(
      env,
      [
        'FEDNANO_AGGREGATOR_IMAGE',
        'FEDNANO_CERTIFICATE_LIFETIME_HOURS',
        'FEDNANO_CLIENT_AGENT_IMAGE',
        'FEDNANO_LEADER_ELECT',
        'FEDNANO_LEASE_NAMESPACE',
        'FEDNANO_LLM_HOST_IMAGE',
        'FEDNANO_LOG_LEVEL',
        'FEDNANO_MTLS',
        'FEDNANO_NATS',
        'FEDNANO_NATS_ACCOUNTS_SECRET',
        'FEDNANO_NATS_CREDS',
        'FEDNANO_OPS_PORT',
        'FEDNANO_POD_NAME',
        'FEDNANO_WATCH_NAMESPACE',
      ],
      'one env var per operator flag (--nats ... --log-level)',
    );
    assert.match(
      sources.get('_helpers.tpl')!,
      /or \.Values\.leaderElection\.enabled \(gt \(int \.Values\.replicas\) 1\)/,
    );
  });

  test('the NetworkPolicies select the labels the operator puts on what it creates', () => {
    const policies = sources.get('networkpolicy.yaml')!;
    for (const name of ['fednano-llm-host', 'fednano-aggregator', 'fednano-client-agent'])
      assert.match(
        policies,
        new RegExp(`app.kubernetes.io/name: ${name}\\n\\s+app.kubernetes.io/managed-by: fednano-operator`),
      );
  });
});

describe('chart: Chart.yaml', () => {
  test('names the chart and its versions', () => {
    const chart = parse(read(join(CHART, 'Chart.yaml'))) as Record<string, unknown>;
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'fednano');
    assert.equal(chart.version, '0.1.0');
    assert.equal(chart.appVersion, '0.1.0');
    assert.equal(chart.type, 'application');
    assert.equal(chart.appVersion, (JSON.parse(read('package.json')) as { version: string }).version);
  });
});

const IMAGES = {
  operator: 'operator',
  'llm-host': 'services/llm-host',
  aggregator: 'services/aggregator',
  'client-agent': 'services/client-agent',
} as const;

/** Dockerfile instructions, with continuation lines joined and comments dropped. */
function instructions(dockerfile: string): { op: string; args: string }[] {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(' ') };
    });
}

describe('images: Dockerfiles', () => {
  for (const [image, workspace] of Object.entries(IMAGES)) {
    test(`docker/${image}.Dockerfile: multi-stage, skips the ORT download, prunes, runs as non-root`, () => {
      const text = read(`docker/${image}.Dockerfile`);
      const ins = instructions(text);
      const froms = ins.filter((i) => i.op === 'FROM');
      assert.ok(froms.length >= 2, 'a build stage and a runtime stage');
      assert.ok(
        froms.some((f) => / AS build$/i.test(f.args)),
        'a stage named build',
      );
      assert.match(text, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
      assert.ok(
        ins.some((i) => i.op === 'RUN' && /ONNXRUNTIME_NODE_INSTALL=skip npm ci\b/.test(i.args)),
        'ONNXRUNTIME_NODE_INSTALL=skip npm ci',
      );
      assert.ok(ins.some((i) => i.op === 'RUN' && i.args.includes(`docker/prune.ts ${workspace}`)));
      const lastFrom = ins.lastIndexOf(froms.at(-1)!);
      const runtime = ins.slice(lastFrom);
      assert.ok(runtime.some((i) => i.op === 'COPY' && i.args.startsWith('--from=build')));
      assert.ok(runtime.some((i) => i.op === 'WORKDIR' && i.args === '/app'));
      const user = runtime.filter((i) => i.op === 'USER').at(-1);
      assert.ok(user, 'USER in the runtime stage');
      assert.equal(user.args, '65532:65532');
      const entrypoint = runtime.filter((i) => i.op === 'ENTRYPOINT').at(-1);
      const pkg = JSON.parse(read(`${workspace}/package.json`)) as { bin: Record<string, string> };
      const bin = join(workspace, Object.values(pkg.bin)[0]!);
      assert.deepEqual(JSON.parse(entrypoint!.args), ['node', bin], "the workspace's bin script");
      assert.ok(
        runtime.some((i) => i.op === 'ENV' && i.args.includes('NODE_OPTIONS=--conditions=fednano-dist')),
        'runs the compiled dist/ (no tsx at run time)',
      );
      assert.ok(ins.some((i) => i.op === 'RUN' && i.args.includes('tsc -b tsconfig.build.json')));
    });

    test(`docker/${image}.Dockerfile.dockerignore lets through everything the Dockerfile copies`, () => {
      const ignore = read(`docker/${image}.Dockerfile.dockerignore`).split('\n');
      const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
      assert.ok(ignore.includes('*') && ignore.includes('**/node_modules'));
      const copies = instructions(read(`docker/${image}.Dockerfile`)).filter(
        (i) => i.op === 'COPY' && !i.args.startsWith('--from'),
      );
      for (const copy of copies) {
        const sources = copy.args.split(/\s+/).slice(0, -1);
        for (const source of sources) {
          const path = source.replace(/\/$/, '');
          assert.ok(
            allowed.some((a) => path === a || path.startsWith(`${a}/`)),
            `${path} is copied but not let through`,
          );
          assert.ok(statSync(path), path);
        }
      }
    });
  }
});

describe('images: prune (docker/prune.ts)', () => {
  const lock = JSON.parse(read('package-lock.json')) as Lockfile;
  const rootDev = Object.keys(
    (lock.packages[''] as { devDependencies?: Record<string, string> }).devDependencies ?? {},
  );

  for (const [image, workspace] of Object.entries(IMAGES)) {
    test(`${image}: keeps what the sources import, drops the dev tooling (tsx included)`, () => {
      const keep = runtimeClosure(lock, workspace);
      for (const name of RUNTIME_ROOT_PACKAGES) assert.ok(keep.has(`node_modules/${name}`), name);
      // Root devDependencies that are only tooling (others, like @types/node, are real dependencies of some packages).
      for (const dev of [
        'tsx',
        'typescript',
        '@biomejs/biome',
        'testcontainers',
        '@testcontainers/k3s',
        'kubernetes-models',
      ]) {
        assert.ok(rootDev.includes(dev), `${dev} is no longer a root devDependency: update this list`);
        assert.ok(!keep.has(`node_modules/${dev}`), `${dev} must not be in the ${image} image`);
      }

      // Every package a kept workspace's sources import at run time must be kept (resolved from that workspace).
      const workspaces = [...keep].filter((at) => !at.includes('node_modules/'));
      assert.ok(workspaces.includes(workspace));
      const builtins = new Set(builtinModules);
      let packageImports = 0;
      for (const ws of workspaces) {
        for (const file of sourceFiles(join(ws, 'src'))) {
          const text = read(file);
          const specifiers = [
            ...text.matchAll(/^import (?!type\b)[^;]*?from '([^']+)'/gms),
            ...text.matchAll(/^export (?!type\b)[^;]*?from '([^']+)'/gms),
            ...text.matchAll(/^import '([^']+)'/gm),
            ...text.matchAll(/\bimport\('([^']+)'\)/g),
          ].map((m) => m[1]!);
          for (const spec of specifiers) {
            if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
            const at = resolveDependency(lock, ws, name);
            assert.ok(at !== undefined && keep.has(at), `${file} imports ${name}, which the ${image} image would lack`);
            packageImports++;
          }
        }
      }
      assert.ok(packageImports > 0, 'no package import found: the import scan is broken');
    });
  }

  test('the images differ where the services do', () => {
    assert.ok(runtimeClosure(lock, 'services/llm-host').has('node_modules/onnxruntime-node'));
    assert.ok(runtimeClosure(lock, 'operator').has('node_modules/@kubernetes/client-node'));
    assert.ok(!runtimeClosure(lock, 'services/aggregator').has('node_modules/@kubernetes/client-node'));
    assert.throws(() => runtimeClosure(lock, 'node_modules/tsx'), /not a workspace/);
  });
});

/** Non-test .ts files under a folder (recursively); none when it does not exist. */
function sourceFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const path = join(dir, e);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

describe('chart: plain YAML files parse', () => {
  for (const file of [
    'Chart.yaml',
    'values.yaml',
    'crds/fednano.io_federations.yaml',
    'crds/fednano.io_federationrounds.yaml',
  ]) {
    test(file, () => {
      assert.deepEqual(parseDocument(read(join(CHART, file))).errors, []);
    });
  }
});
