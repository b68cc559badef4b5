/* dsjepsen report timeline: draws only the ops in view; merges bars sharing a pixel when there
 * are too many; always draws ops involved in an anomaly. All text from the run is written with
 * textContent / setAttribute, never as markup. */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var MAXBARS = 6000;
  var LABEL_W = 64, AXIS_H = 22, FAULT_H = 20, RIGHT = 8;
  var TYPES = ["ok", "fail", "info"];

  var holder = document.getElementById("timeline-data");
  var wrap = document.getElementById("timeline");
  if (!holder || !wrap) { return; }
  var data = JSON.parse(holder.textContent);
  var ops = data.ops;
  var nOps = ops.s.length;
  var nLanes = Math.max(1, data.lanes.length);
  var LH = nLanes <= 40 ? 16 : (nLanes <= 120 ? 9 : 6);
  var anomalies = {};
  data.anomalies.forEach(function (i) { anomalies[i] = true; });
  var view = { a: 0, b: Math.max(data.end, 1) };
  var selected = -1;

  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); } }
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function html(tag, cls, parent, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function fmtT(t) {
    if (data.unit === "pos") { return "position " + Math.round(t); }
    return "t+" + (t / 1000).toFixed(3) + "s";
  }
  function fmtDur(d) {
    if (data.unit === "pos") { return Math.round(d) + " positions"; }
    return d < 1000 ? d.toFixed(1) + " ms" : (d / 1000).toFixed(2) + " s";
  }
  function endOf(i) { return ops.e[i] < 0 ? data.end : ops.e[i]; }
  function label(i) {
    var f = data.fs[ops.f[i]], k = ops.k[i] === "" ? "" : " " + ops.k[i];
    var s = f + k + " " + ops.v[i];
    if (ops.e[i] >= 0 && ops.t[i] === 0 && f === "read") { s = f + k + " \u2192 " + ops.o[i]; }
    return s;
  }

  // toolbar, drawing area, detail panel
  var bar = html("div", "tl-toolbar", wrap);
  function button(text, title, fn) {
    var b = html("button", "tl-btn", bar, text);
    b.type = "button"; b.title = title; b.addEventListener("click", fn);
    return b;
  }
  button("\u2212", "zoom out", function () { zoom(2, 0.5); });
  button("+", "zoom in", function () { zoom(0.5, 0.5); });
  button("\u25C0", "pan left", function () { pan(-0.5); });
  button("\u25B6", "pan right", function () { pan(0.5); });
  button("whole run", "show the whole run", function () { view.a = 0; view.b = Math.max(data.end, 1); render(); });
  if (data.anomalies.length) {
    button("first anomaly", "zoom to the first op involved in an anomaly", function () {
      focusOp(data.anomalies[0]);
    });
  }
  var status = html("span", "tl-status", bar);
  var scroller = html("div", "tl-scroll", wrap);
  var svg = el("svg", { "class": "tl-svg", role: "img", "aria-label": "timeline of every op" }, scroller);
  var tip = html("div", "tl-tip", wrap);
  var panel = html("div", "tl-detail", wrap, "Click an op for its details; ctrl+wheel zooms, drag pans.");

  function zoom(factor, at) {
    var span = view.b - view.a, c = view.a + span * at;
    var ns = Math.max(span * factor, data.unit === "pos" ? 4 : 0.05);
    ns = Math.min(ns, Math.max(data.end, 1));
    view.a = Math.max(0, c - ns * at); view.b = view.a + ns;
    if (view.b > data.end) { view.b = Math.max(data.end, 1); view.a = Math.max(0, view.b - ns); }
    render();
  }
  function pan(frac) {
    var span = view.b - view.a, d = span * frac;
    view.a = Math.min(Math.max(0, view.a + d), Math.max(0, data.end - span));
    view.b = view.a + span;
    render();
  }

  function ticks(a, b, px) {
    var target = Math.max(2, Math.floor(px / 110));
    var raw = (b - a) / target, exp = Math.pow(10, Math.floor(Math.log10(raw))), step = exp;
    [1, 2, 5, 10].some(function (m) { step = m * exp; return step >= raw; });
    var out = [];
    for (var t = Math.ceil(a / step) * step; t <= b; t += step) { out.push(t); }
    return out;
  }

  function render() {
    var W = Math.max(640, Math.floor(scroller.clientWidth || wrap.clientWidth || 1000));
    var plotW = W - LABEL_W - RIGHT;
    var top = AXIS_H + FAULT_H;
    var H = top + nLanes * LH + 4;
    var span = Math.max(view.b - view.a, 1e-9);
    var X = function (t) { return LABEL_W + (t - view.a) / span * plotW; };
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var g = el("g", {}, svg);
    for (var l = 0; l < nLanes; l++) {
      if (l % 2 === 0) { el("rect", { "class": "tl-lane", x: LABEL_W, y: top + l * LH, width: plotW, height: LH }, g); }
      if (LH >= 9 || l % 5 === 0) {
        el("text", { "class": "tl-lane-label", x: LABEL_W - 6, y: top + l * LH + LH / 2 + 3.5, "text-anchor": "end" }, g, "p" + data.lanes[l]);
      }
    }
    ticks(view.a, view.b, plotW).forEach(function (t) {
      var x = X(t);
      el("line", { "class": "tl-grid", x1: x, x2: x, y1: AXIS_H - 4, y2: H }, g);
      el("text", { "class": "tl-tick", x: x, y: AXIS_H - 8, "text-anchor": "middle" }, g,
        data.unit === "pos" ? String(Math.round(t)) : (t / 1000).toFixed(span < 2000 ? 3 : 1) + "s");
    });
    var fg = el("g", {}, svg);
    data.faults.forEach(function (w) {
      if (w.e < view.a || w.s > view.b) { return; }
      var x0 = Math.max(X(w.s), LABEL_W), x1 = Math.min(X(w.e), W - RIGHT);
      var r = el("rect", { "class": "tl-fault fam-" + w.family.replace(/[^A-Za-z0-9-]/g, "_"), x: x0, y: AXIS_H, width: Math.max(x1 - x0, 2), height: H - AXIS_H }, fg);
      r.setAttribute("data-fault", String(w.id));
      el("title", {}, r, w.family + ": " + w.d + " (" + fmtT(w.s) + " to " + fmtT(w.e) + (w.healed ? "" : ", never healed in the history") + ")");
      var chars = Math.floor((x1 - x0 - 6) / 6.2);
      if (chars >= 4) {
        var txt = w.d.length > chars ? w.d.slice(0, chars - 1) + "\u2026" : w.d;
        el("text", { "class": "tl-fault-label", x: x0 + 3, y: AXIS_H + 13 }, fg, txt);
      }
    });
    data.events.forEach(function (ev) {
      if (ev.s < view.a || ev.s > view.b) { return; }
      var ln = el("line", { "class": "tl-event", x1: X(ev.s), x2: X(ev.s), y1: AXIS_H, y2: H }, fg);
      el("title", {}, ln, ev.d);
    });

    var vis = [];
    for (var i = 0; i < nOps; i++) {
      if (endOf(i) < view.a || ops.s[i] > view.b) { continue; }
      vis.push(i);
    }
    var draw = vis, merged = 0, groups = null;
    if (vis.length > MAXBARS) {
      var px = Math.max(1, Math.ceil(nLanes * plotW / MAXBARS));
      var best = {};
      groups = {};
      draw = [];
      vis.forEach(function (i) {
        if (anomalies[i]) { draw.push(i); return; }
        var key = ops.l[i] * 1e6 + Math.floor(X(ops.s[i]) / px);
        var cur = best[key];
        if (cur === undefined) { best[key] = i; groups[i] = { n: 1, e: endOf(i) }; return; }
        var gr = groups[cur];
        gr.n++; gr.e = Math.max(gr.e, endOf(i)); merged++;
        if (ops.t[i] > ops.t[cur]) { best[key] = i; groups[i] = gr; delete groups[cur]; }
      });
      for (var k in best) { if (Object.prototype.hasOwnProperty.call(best, k)) { draw.push(best[k]); } }
    }
    var og = el("g", { "class": "tl-ops" }, svg);
    var bh = Math.max(LH - 5, 3);
    draw.forEach(function (i) {
      var e = groups && groups[i] ? groups[i].e : endOf(i);
      var x0 = Math.max(X(ops.s[i]), LABEL_W), x1 = Math.min(X(e), W - RIGHT);
      var cls = "tl-op t-" + TYPES[ops.t[i]] + (ops.e[i] < 0 ? " open" : "") + (anomalies[i] ? " anomalous" : "") + (i === selected ? " selected" : "");
      var r = el("rect", { id: "op-" + i, "class": cls, x: x0, y: AXIS_H + FAULT_H + ops.l[i] * LH + (LH - bh) / 2, width: Math.max(x1 - x0, 1.5), height: bh, "data-i": i }, og);
      if (groups && groups[i] && groups[i].n > 1) { r.setAttribute("data-merged", String(groups[i].n)); }
    });
    status.textContent = fmtT(view.a) + " \u2013 " + fmtT(view.b) + " \u00B7 " + vis.length + " of " + nOps + " ops in view" + (merged ? ", " + merged + " merged into shared pixels (zoom in to separate them)" : "");
    wrap.setAttribute("data-rendered", "1");
    wrap.setAttribute("data-drawn", String(draw.length));
  }

  function describe(i) {
    var lines = [];
    var node = data.nodes[ops.n[i]];
    lines.push("op " + i + " \u00B7 process " + data.lanes[ops.l[i]] + (node ? " \u00B7 node " + node : ""));
    lines.push(data.fs[ops.f[i]] + (ops.k[i] !== "" ? " key " + ops.k[i] : "") + " value " + ops.v[i] + (ops.e[i] >= 0 ? " \u2192 " + ops.o[i] : ""));
    lines.push(TYPES[ops.t[i]] + (ops.e[i] < 0 ? " (never completed)" : "") + (anomalies[i] ? " \u00B7 involved in an anomaly" : ""));
    lines.push("invoked " + fmtT(ops.s[i]) + (ops.e[i] >= 0 ? ", completed " + fmtT(ops.e[i]) + " (" + fmtDur(ops.e[i] - ops.s[i]) + ")" : ""));
    if (data.errors[String(i)] !== undefined) { lines.push("error: " + data.errors[String(i)]); }
    return lines;
  }
  function showDetail(i) {
    selected = i;
    while (panel.firstChild) { panel.removeChild(panel.firstChild); }
    describe(i).forEach(function (line) { html("div", "", panel, line); });
    var prev = svg.querySelector(".tl-op.selected");
    if (prev) { prev.setAttribute("class", prev.getAttribute("class").replace(" selected", "")); }
    var r = document.getElementById("op-" + i);
    if (r) { r.setAttribute("class", r.getAttribute("class") + " selected"); }
  }
  function focusOp(i) {
    if (!(i >= 0 && i < nOps)) { return; }
    var s = ops.s[i], e = endOf(i), pad = Math.max((e - s) * 4, data.end / 400, data.unit === "pos" ? 4 : 1);
    view.a = Math.max(0, s - pad); view.b = Math.min(Math.max(data.end, 1), e + pad);
    render();
    showDetail(i);
    var r = document.getElementById("op-" + i);
    if (r) {
      wrap.scrollIntoView({ block: "start" });
      scroller.scrollTop = Math.max(0, AXIS_H + FAULT_H + ops.l[i] * LH - scroller.clientHeight / 2);
    }
  }

  svg.addEventListener("click", function (ev) {
    var i = ev.target.getAttribute && ev.target.getAttribute("data-i");
    if (i !== null && i !== undefined) { showDetail(Number(i)); }
  });
  svg.addEventListener("mousemove", function (ev) {
    var t = ev.target, i = t.getAttribute && t.getAttribute("data-i");
    if (i === null || i === undefined) { tip.style.display = "none"; return; }
    var m = t.getAttribute("data-merged");
    tip.textContent = label(Number(i)) + " \u00B7 " + TYPES[ops.t[Number(i)]] + (m ? " (+" + (Number(m) - 1) + " more ops in this pixel)" : "");
    tip.style.display = "block";
    var rect = wrap.getBoundingClientRect();
    tip.style.left = (ev.clientX - rect.left + 12) + "px";
    tip.style.top = (ev.clientY - rect.top + 12) + "px";
  });
  svg.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  svg.addEventListener("wheel", function (ev) {
    if (!ev.ctrlKey && !ev.metaKey) { return; }
    ev.preventDefault();
    var rect = svg.getBoundingClientRect();
    var at = Math.min(Math.max((ev.clientX - rect.left - LABEL_W) / Math.max(rect.width - LABEL_W - RIGHT, 1), 0), 1);
    zoom(ev.deltaY > 0 ? 1.5 : 1 / 1.5, at);
  }, { passive: false });
  var drag = null;
  svg.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, a: view.a, b: view.b }; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) { return; }
    var dx = ev.clientX - drag.x;
    if (Math.abs(dx) < 4) { return; }
    var span = drag.b - drag.a, plotW = svg.getBoundingClientRect().width - LABEL_W - RIGHT;
    var d = -dx / Math.max(plotW, 1) * span;
    view.a = Math.min(Math.max(0, drag.a + d), Math.max(0, data.end - span));
    view.b = view.a + span;
    render();
  });
  function fromHash() {
    var m = /^#op-(\d+)$/.exec(window.location.hash);
    if (m) { focusOp(Number(m[1])); return true; }
    return false;
  }
  window.addEventListener("hashchange", fromHash);
  var resizeTimer = null;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(render, 150); });
  if (!fromHash()) { render(); }
})();
