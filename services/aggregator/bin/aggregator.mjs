#!/usr/bin/env node
// '#main' (package.json "imports") is the compiled dist/main.js when node runs with --conditions=fednano-dist, as the
// images do; otherwise the TypeScript source, run through tsx, so the service runs straight from a checkout after `npm ci`.
const entry = import.meta.resolve('#main');
if (entry.endsWith('.ts')) (await import('tsx/esm/api')).register();
const { main } = await import(entry);
await main(process.argv.slice(2));
