// Lint BPMN files with bpmnlint in one Node process and print per-file timings as JSON.
// Used by bench/bpmn_toolkit.py; install first: npm install --prefix bench
// Usage: node bench/bpmnlint_runner.mjs RC_FILE FILE...
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));
const { Linter } = require('bpmnlint');
const NodeResolver = require('bpmnlint/lib/resolver/node-resolver');
const { BpmnModdle } = await import(join(here, 'node_modules', 'bpmn-moddle', 'dist', 'index.js'));

const [rcFile, ...files] = process.argv.slice(2);
const config = JSON.parse(readFileSync(rcFile, 'utf8'));
const linter = new Linter({ config, resolver: new NodeResolver({ require }) });
const moddle = new BpmnModdle();

// warm up: the first lint loads and compiles every rule module
if (files.length) {
  const { rootElement } = await moddle.fromXML(readFileSync(files[0], 'utf8'));
  await linter.lint(rootElement);
}

const repeat = Math.max(1, parseInt(process.env.BPMNLINT_REPEAT || '5', 10));
const out = [];
for (const file of files) {
  const times = [];
  let findings = 0, error = null;
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint();
    findings = 0;
    try {
      const xml = readFileSync(file, 'utf8');  // read + parse + lint, as our validate does
      const { rootElement, warnings } = await moddle.fromXML(xml);
      const results = await linter.lint(rootElement);
      for (const reports of Object.values(results)) findings += reports.length;
      findings += warnings.length;
    } catch (e) {
      error = String(e && e.message || e).split('\n')[0];
    }
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  out.push({ file, ms: times[Math.floor(times.length / 2)], findings, error });
}
console.log(JSON.stringify(out));
