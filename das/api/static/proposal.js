// The proposal's diagram: bpmn-js (bundled, served by DAS) draws the BPMN, then the page's
// JSON data colours elements (added / changed / removed, findings, never reached) and puts a
// text badge on each, so a change is visible without colour too. No inline script: CSP.
(function () {
  'use strict';
  var status = document.getElementById('diagram-status');
  var holder = document.getElementById('das-data');
  var canvasEl = document.getElementById('canvas');
  function say(text) { if (status) { status.textContent = text; } }
  if (!holder || !canvasEl) { return; }
  var data = JSON.parse(holder.textContent);
  if (!data.xml) { say('This proposal has no process diagram.'); canvasEl.hidden = true; return; }
  if (typeof window.BpmnJS !== 'function') {
    say('The diagram viewer is not installed (scripts/install.sh bundles bpmn-js); see the lists below.');
    document.body.dataset.diagram = 'missing';
    return;
  }
  var viewer = new window.BpmnJS({ container: canvasEl });
  var showingBase = false;

  function badgeWord(text) { return text.split(' ').pop().replace(/[^a-z]/g, ''); }

  function decorate(markers, badges, prefix) {
    var canvas = viewer.get('canvas');
    var overlays = viewer.get('overlays');
    var registry = viewer.get('elementRegistry');
    Object.keys(markers).forEach(function (id) {
      if (!registry.get(id)) { return; }
      markers[id].forEach(function (cls) { canvas.addMarker(id, cls); });
    });
    Object.keys(badges).forEach(function (key) {
      var id = key.indexOf(prefix) === 0 ? key.slice(prefix.length) : (prefix ? null : key);
      if (!id || !registry.get(id)) { return; }
      var box = document.createElement('div');
      box.className = 'das-overlay';
      badges[key].forEach(function (text) {
        var span = document.createElement('span');
        span.className = badgeWord(text);
        span.textContent = text;  // text, never HTML
        box.appendChild(span);
      });
      overlays.add(id, 'das', { position: { top: -14, left: 0 }, html: box });
    });
  }

  function show(xml, markers, badges, prefix, label) {
    return viewer.importXML(xml).then(function (result) {
      viewer.get('canvas').zoom('fit-viewport');
      decorate(markers, badges, prefix);
      var warnings = (result && result.warnings) ? result.warnings.length : 0;
      say(label + (warnings ? ' (' + warnings + ' import warning(s))' : ''));
      document.body.dataset.diagram = 'ready';
      document.body.dataset.view = prefix ? 'base' : 'proposal';
    }).catch(function (err) {
      say('The diagram could not be drawn: ' + err.message);
      document.body.dataset.diagram = 'failed';
    });
  }

  var proposed = function () {
    return show(data.xml, data.markers, data.badges, '', 'Proposed version; changes against the base are marked.');
  };
  var base = function () {
    return show(data.base_xml, data.base_markers, data.badges, '__base__', 'Base version; removed elements are marked.');
  };
  var toggle = document.getElementById('toggle-base');
  if (toggle && data.base_xml) {
    toggle.hidden = false;
    toggle.addEventListener('click', function () {
      showingBase = !showingBase;
      toggle.textContent = showingBase ? 'Show proposed version' : 'Show base version';
      (showingBase ? base : proposed)();
    });
  }
  proposed();
}());
