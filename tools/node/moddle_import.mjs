// Import BPMN files with bpmn-moddle + camunda-bpmn-moddle, the parser bpmn-js and Camunda
// Modeler use, and report per file: import warnings, and flow elements without a DI shape/edge.
// Usage: node tools/node/moddle_import.mjs FILE...   (prints one JSON array)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));
const { BpmnModdle } = await import(join(here, 'node_modules', 'bpmn-moddle', 'dist', 'index.js'));
const camunda = require('camunda-bpmn-moddle/resources/camunda.json');
const moddle = new BpmnModdle({ camunda });

function flowElements(container, out) {
  for (const el of container.flowElements || []) {
    out.push(el);
    if (el.flowElements) flowElements(el, out);
  }
  return out;
}

const results = [];
for (const file of process.argv.slice(2)) {
  const entry = { file, warnings: [], missing_di: [], elements: 0, error: null };
  try {
    const { rootElement, warnings } = await moddle.fromXML(readFileSync(file, 'utf8'));
    entry.warnings = warnings.map((w) => w.message);
    const withDi = new Set();
    for (const diagram of rootElement.diagrams || []) {
      for (const di of diagram.plane.planeElement || []) {
        if (di.bpmnElement) withDi.add(di.bpmnElement.id);
      }
    }
    for (const process of (rootElement.rootElements || []).filter((e) => e.$type === 'bpmn:Process')) {
      for (const el of flowElements(process, [])) {
        if (el.$type === 'bpmn:DataObject') continue;
        entry.elements += 1;
        if (!withDi.has(el.id)) entry.missing_di.push(el.id);
      }
    }
  } catch (err) {
    entry.error = String(err && err.message || err);
  }
  results.push(entry);
}
console.log(JSON.stringify(results));
