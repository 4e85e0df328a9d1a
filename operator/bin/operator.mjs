#!/usr/bin/env node
// Runs the TypeScript sources through tsx, so the operator runs straight from a checkout after `npm ci`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
await main(process.argv.slice(2));
