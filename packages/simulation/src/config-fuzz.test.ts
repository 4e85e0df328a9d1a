import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { rng } from '@fednano/data';
import { ConfigError, parseConfig } from './config.js';

// Fuzz of the config parser: mutated YAML either parses to a valid config or fails with a ConfigError that names the
// source; never a TypeError or another crash from deep inside.
const SOURCE = readFileSync(fileURLToPath(new URL('../../../examples/quickstart.yaml', import.meta.url)), 'utf8');

test('5,000 mutated configs: a valid config or a ConfigError, nothing else', () => {
  const random = rng(7);
  const tokens = [
    '',
    ' ',
    '\n',
    ':',
    '-',
    '[',
    ']',
    '{',
    '}',
    '*a',
    '&a',
    '!!str',
    '0',
    '-1',
    '1e309',
    'null',
    'true',
    '"x"',
    'NaN',
    '~',
  ];
  const lines = SOURCE.split('\n');
  let valid = 0;
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    const l = [...lines];
    for (let m = 0; m < 1 + Math.floor(random() * 3); m++) {
      const at = Math.floor(random() * l.length);
      const line = l[at]!;
      const op = random();
      if (op < 0.3) l.splice(at, 1);
      else if (op < 0.5) l.splice(at, 0, l[Math.floor(random() * l.length)]!);
      else if (op < 0.8) {
        const cut = Math.floor(random() * (line.length + 1));
        l[at] =
          line.slice(0, cut) +
          tokens[Math.floor(random() * tokens.length)] +
          line.slice(cut + Math.floor(random() * 3));
      } else l[at] = line.replace(/: .*$/, `: ${tokens[Math.floor(random() * tokens.length)]}`);
    }
    try {
      parseConfig(l.join('\n'), 'fuzz.yaml');
      valid++;
    } catch (e) {
      assert.ok(
        e instanceof ConfigError,
        `mutation ${i} threw ${(e as Error).name}: ${(e as Error).message}\n${l.join('\n')}`,
      );
      assert.match((e as Error).message, /^fuzz\.yaml: /);
      refused++;
    }
  }
  assert.ok(refused > 2000 && valid > 100, `valid ${valid}, refused ${refused}`);
});
