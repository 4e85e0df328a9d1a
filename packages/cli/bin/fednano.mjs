#!/usr/bin/env node
// Runs the TypeScript sources through tsx, so the command works straight from a checkout after `npm ci`.
import { register } from 'tsx/esm/api';

register();
// A closed pipe (e.g. `fednano footprint | head`) ends the command quietly, as Unix tools do.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv.slice(2));
