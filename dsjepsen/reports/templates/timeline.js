/* dsjepsen report timeline: draws only the ops in view; merges bars sharing a pixel when there
 * are too many; always draws the ops an anomaly is about. Two views: one lane per process with
 * every key (the default), or one key at a time, Porcupine-style (lanes per process, labelled
 * ops, the longest linearization drawn with its steps, the op that cannot be placed in red).
 * All text from the run is written with textContent / setAttribute, never as markup.
 * Also: sorting of the anomaly table (its rows are <details>, which work without script), and
 * fitting each anomaly diagram to its box, or scrolling it to the op that cannot be placed.
 * A page of a very long run carries only some of its ops (an "id" column then gives each op's
 * position in the run, which is what anomalies, links and the detail panel name) and a count
 * per time bucket of the rest: those stretches are drawn shaded, and when the page comes from
 * `dsjepsen serve` zooming into one loads its ops. */
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
  // op ids (positions in the run) and the page's own indices: the same unless ops were left out
  var ids = ops.id || null, loc = {};
  if (ids) { for (var q = 0; q < nOps; q++) { loc[ids[q]] = q; } }
  function gid(i) { return ids ? ids[i] : i; }
  function lid(g) { return ids ? loc[g] : (g >= 0 && g < nOps ? g : undefined); }
  var omitted = data.omitted || null, loaded = [], loading = false;
  var canLoad = !!(omitted && ids && /^https?:$/.test(window.location.protocol));
  var LOAD_MAX = 60000;
  var nLanes = Math.max(1, data.lanes.length);
  var LH = nLanes <= 40 ? 16 : (nLanes <= 120 ? 9 : 6);
  var allLanes = nLanes, allLH = LH;
  var mode = "";           // "" = per process, all keys; otherwise the key shown
  var laneRow = null;      // per-key view: process lane -> row
  var keyOps = null;       // per-key view: the ops of that key
  var steps = {};          // per-key view: op -> [step n, state before, state after]
  var lin = {};
  Object.keys(data.lin || {}).forEach(function (k) {  // to the page's indices; steps left out are not drawn
    var L = data.lin[k], bad = lid(L.bad);
    if (bad === undefined) { return; }
    var st = [];
    L.steps.forEach(function (s) { var i = lid(s[0]); if (i !== undefined) { st.push([i, s[1], s[2], s[3]]); } });
    lin[k] = { bad: bad, steps: st, states: L.states, msg: L.msg };
  });
  var anomalies = {};
  data.anomalies.forEach(function (g) { var i = lid(g); if (i !== undefined) { anomalies[i] = true; } });
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
  if (data.first !== null && data.first !== undefined && lid(data.first) !== undefined) {
    button("first anomaly", "zoom to the op of the first anomaly (the one the summary names)", function () {
      focusOp(lid(data.first));
    });
  }
  if (data.keys && data.keys.length) {
    var sel = html("select", "tl-select", bar);
    sel.setAttribute("aria-label", "timeline view");
    var o0 = html("option", "", sel, "all keys, one lane per process");
    o0.value = "";
    data.keys.forEach(function (k) {
      var o = html("option", "", sel, "key " + k + (lin[k] ? "  ✗ not linearizable" : ""));
      o.value = k;
    });
    sel.addEventListener("change", function () { setMode(sel.value); render(); });
    wrap.tlSelect = sel;
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

  function setMode(k) {
    mode = k;
    steps = {};
    if (!mode) { laneRow = null; keyOps = null; nLanes = allLanes; LH = allLH; wrap.setAttribute("data-mode", ""); return; }
    laneRow = {}; keyOps = [];
    var rows = 0;
    for (var i = 0; i < nOps; i++) {
      if (ops.k[i] !== mode) { continue; }
      keyOps.push(i);
      if (laneRow[ops.l[i]] === undefined) { laneRow[ops.l[i]] = rows++; }
    }
    nLanes = Math.max(1, rows); LH = 30;
    var L = lin[mode];
    if (L) { L.steps.forEach(function (s) { steps[s[0]] = s; }); }
    wrap.setAttribute("data-mode", mode);
    if (keyOps.length) {
      var a = ops.s[keyOps[0]], b = endOf(keyOps[keyOps.length - 1]);
      if (L) { a = ops.s[L.bad] - (endOf(L.bad) - ops.s[L.bad]) * 12; b = endOf(L.bad) + (endOf(L.bad) - ops.s[L.bad]) * 3; if (L.steps.length) { a = Math.min(a, ops.s[L.steps[Math.max(0, L.steps.length - 8)][0]]); } }
      var pad = Math.max((b - a) * 0.05, data.unit === "pos" ? 2 : 1);
      view.a = Math.max(0, a - pad); view.b = Math.min(Math.max(data.end, 1), b + pad);
    }
  }
  function rowOf(i) { return laneRow ? laneRow[ops.l[i]] : ops.l[i]; }

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
    var rowName = [];
    if (laneRow) { for (var pl in laneRow) { if (Object.prototype.hasOwnProperty.call(laneRow, pl)) { rowName[laneRow[pl]] = data.lanes[pl]; } } }
    for (var l = 0; l < nLanes; l++) {
      if (l % 2 === 0) { el("rect", { "class": "tl-lane", x: LABEL_W, y: top + l * LH, width: plotW, height: LH }, g); }
      if (LH >= 9 || l % 5 === 0) {
        el("text", { "class": "tl-lane-label", x: LABEL_W - 6, y: top + l * LH + LH / 2 + 3.5, "text-anchor": "end" }, g, "p" + (laneRow ? rowName[l] : data.lanes[l]));
      }
    }
    ticks(view.a, view.b, plotW).forEach(function (t) {
      var x = X(t);
      el("line", { "class": "tl-grid", x1: x, x2: x, y1: AXIS_H - 4, y2: H }, g);
      el("text", { "class": "tl-tick", x: x, y: AXIS_H - 8, "text-anchor": "middle" }, g,
        data.unit === "pos" ? String(Math.round(t)) : (t / 1000).toFixed(span < 2000 ? 3 : 1) + "s");
    });
    var fg = el("g", {}, svg);
    var labelEnd = -1;  // where the last fault label ends: overlapping windows never overprint
    data.faults.forEach(function (w, wi) {
      if (w.e < view.a || w.s > view.b) { return; }
      var x0 = Math.max(X(w.s), LABEL_W), x1 = Math.min(X(w.e), W - RIGHT);
      var nextW = data.faults[wi + 1];
      var room = Math.min(x1, nextW ? Math.max(X(nextW.s), LABEL_W) : x1) - x0;
      var r = el("rect", { "class": "tl-fault fam-" + w.family.replace(/[^A-Za-z0-9-]/g, "_"), x: x0, y: AXIS_H, width: Math.max(x1 - x0, 2), height: H - AXIS_H }, fg);
      r.setAttribute("data-fault", String(w.id));
      if (/^#[0-9a-fA-F]{6}$/.test(w.c || "")) {  // the family's colour (its package's look)
        r.setAttribute("fill", w.c); r.setAttribute("fill-opacity", "0.12");
        r.setAttribute("stroke", w.c); r.setAttribute("stroke-opacity", "0.5");
      }
      el("title", {}, r, w.family + ": " + w.d + " (" + fmtT(w.s) + " to " + fmtT(w.e) + (w.healed ? "" : ", never healed in the history") + ")");
      var chars = Math.floor((room - 6) / 6.2);
      if (chars >= 4 && x0 > labelEnd) {
        var txt = w.d.length > chars ? w.d.slice(0, chars - 1) + "\u2026" : w.d;
        el("text", { "class": "tl-fault-label", x: x0 + 3, y: AXIS_H + 13 }, fg, txt);
        labelEnd = x0 + 3 + txt.length * 6.2;
      }
    });
    data.events.forEach(function (ev) {
      if (ev.s < view.a || ev.s > view.b) { return; }
      var ln = el("line", { "class": "tl-event", x1: X(ev.s), x2: X(ev.s), y1: AXIS_H, y2: H }, fg);
      el("title", {}, ln, ev.d);
    });

    var shown = omittedIn(view.a, view.b);
    if (shown) {
      var mg = el("g", { "class": "tl-omitted-bands" }, svg), most = 1, nb = omitted.ok.length;
      for (var b0 = 0; b0 < nb; b0++) { most = Math.max(most, omittedAt(b0)); }
      for (var b = 0; b < nb; b++) {
        var cnt = omittedAt(b), ba = b * omitted.w, bb = ba + omitted.w;
        if (!cnt || bb < view.a || ba > view.b || isLoaded(ba, bb)) { continue; }
        var bx0 = Math.max(X(ba), LABEL_W), bx1 = Math.min(X(bb), W - RIGHT);
        var band = el("rect", { "class": "tl-omitted", x: bx0, y: top, width: Math.max(bx1 - bx0, 1), height: H - top - 4, "fill-opacity": (0.08 + 0.25 * cnt / most).toFixed(3) }, mg);
        el("title", {}, band, cnt + " ops not in this page (" + omitted.ok[b] + " ok, " + omitted.fail[b] + " fail, " + omitted.info[b] + " info) between " + fmtT(ba) + " and " + fmtT(bb) + (canLoad ? ": zoom in to load them" : ": `dsjepsen serve` loads them when you zoom in"));
      }
    }
    var vis = [];
    var pool = keyOps || null, n = pool ? pool.length : nOps;
    for (var j = 0; j < n; j++) {
      var i = pool ? pool[j] : j;
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
        var key = rowOf(i) * 1e6 + Math.floor(X(ops.s[i]) / px);
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
      var cls = "tl-op t-" + TYPES[ops.t[i]] + (ops.e[i] < 0 ? " open" : "") + (anomalies[i] ? " anomalous" : "") + (steps[i] ? " lin" : "") + (i === selected ? " selected" : "");
      var y = AXIS_H + FAULT_H + rowOf(i) * LH + (LH - bh) / 2;
      var minW = mode ? (anomalies[i] ? 10 : 4) : 1.5;  // per key: the op that cannot be placed stays visible
      var r = el("rect", { id: "op-" + gid(i), "class": cls, x: x0, y: y, width: Math.max(x1 - x0, minW), height: bh, "data-i": i }, og);
      if (groups && groups[i] && groups[i].n > 1) { r.setAttribute("data-merged", String(groups[i].n)); }
      if (mode) {
        var text = label(i).replace(" " + mode + " ", " ");
        var room = x1 - x0 - (steps[i] ? 22 : 6);
        if (room > 7 * 3) {
          var chars = Math.floor(room / 6.7);
          el("text", { "class": "tl-op-label", x: x0 + (steps[i] ? 20 : 4), y: y + bh / 2 + 4 }, og, text.length > chars ? text.slice(0, chars - 1) + "\u2026" : text);
        }
      }
    });
    if (mode && lin[mode]) {
      var pts = [];
      lin[mode].steps.forEach(function (s) {
        var i = s[0];
        if (endOf(i) < view.a || ops.s[i] > view.b) { return; }
        var cx = Math.max(X(ops.s[i]), LABEL_W) + 9, cy = AXIS_H + FAULT_H + rowOf(i) * LH + LH / 2;
        pts.push([cx, cy, s[1]]);
      });
      if (pts.length > 1) { el("polyline", { "class": "tl-path", points: pts.map(function (p) { return p[0] + "," + p[1]; }).join(" ") }, og); }
      pts.forEach(function (p) {
        el("circle", { "class": "tl-step", cx: p[0], cy: p[1], r: 7.5 }, og);
        el("text", { "class": "tl-step-n", x: p[0], y: p[1] + 3, "text-anchor": "middle" }, og, String(p[2] % 1000));
      });
    }
    status.textContent = (mode ? "key " + mode + " \u00B7 " : "") + fmtT(view.a) + " \u2013 " + fmtT(view.b) + " \u00B7 " + vis.length + " of " + (keyOps ? keyOps.length : nOps) + " ops in view" + (merged ? ", " + merged + " merged into shared pixels (zoom in to separate them)" : "") +
      (shown ? " \u00B7 " + shown + " more in shaded quiet stretches, not in this page" + (canLoad ? (shown <= LOAD_MAX ? " (loading)" : " (zoom in to load them)") : " (open the report with `dsjepsen serve` and zoom in to load them)") : "");
    wrap.setAttribute("data-omitted", String(shown));
    maybeLoad(shown);
    wrap.setAttribute("data-rendered", "1");
    wrap.setAttribute("data-drawn", String(draw.length));
  }

  // the summarised stretches: what is left out, and loading it from `dsjepsen serve`
  function omittedAt(b) { return omitted.ok[b] + omitted.fail[b] + omitted.info[b]; }
  function isLoaded(a, b) {
    return loaded.some(function (w) { return w[0] <= a && w[1] >= b; });
  }
  function omittedIn(a, b) {
    if (!omitted) { return 0; }
    var n = 0, b0 = Math.max(0, Math.floor(a / omitted.w)), b1 = Math.min(omitted.ok.length - 1, Math.floor(b / omitted.w));
    for (var k = b0; k <= b1; k++) {
      if (!isLoaded(k * omitted.w, (k + 1) * omitted.w)) { n += omittedAt(k); }
    }
    return n;
  }
  function code(names, name) {
    var c = names.indexOf(name);
    if (c < 0) { names.push(name); c = names.length - 1; }
    return c;
  }
  function merge(w) {
    var wo = w.ops, cols = ["s", "e", "t", "k", "v", "o"];
    for (var j = 0; j < wo.id.length; j++) {
      var g = wo.id[j];
      if (loc[g] !== undefined) { continue; }
      cols.forEach(function (c) { ops[c].push(wo[c][j]); });
      ops.l.push(code(data.lanes, w.lanes[wo.l[j]]));
      ops.f.push(code(data.fs, w.fs[wo.f[j]]));
      ops.n.push(code(data.nodes, w.nodes[wo.n[j]]));
      ids.push(g); loc[g] = ids.length - 1;
      if (w.errors[String(g)] !== undefined) { data.errors[String(g)] = w.errors[String(g)]; }
    }
    nOps = ops.s.length;
    allLanes = Math.max(1, data.lanes.length);
    if (!mode) { nLanes = allLanes; }
  }
  function maybeLoad(shown) {
    if (!canLoad || loading || !shown || shown > LOAD_MAX) { return; }
    // whole buckets: a bucket the view cuts is then loaded whole and is not asked for again
    var a = Math.floor(view.a / omitted.w) * omitted.w, b = Math.ceil(view.b / omitted.w) * omitted.w;
    loading = true;
    fetch("report.html?window=" + a.toFixed(3) + "," + b.toFixed(3), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (w) {
        loading = false;
        if (!w || !w.ops || !w.ops.id) { canLoad = false; render(); return; }
        merge(w);
        loaded.push([a, b]);
        if (mode) { var keep = { a: view.a, b: view.b }; setMode(mode); view.a = keep.a; view.b = keep.b; }
        render();
      })
      .catch(function () { loading = false; canLoad = false; render(); });
  }

  function describe(i) {
    var lines = [];
    var node = data.nodes[ops.n[i]];
    lines.push("op " + gid(i) + " \u00B7 process " + data.lanes[ops.l[i]] + (node ? " \u00B7 node " + node : ""));
    lines.push(data.fs[ops.f[i]] + (ops.k[i] !== "" ? " key " + ops.k[i] : "") + " value " + ops.v[i] + (ops.e[i] >= 0 ? " \u2192 " + ops.o[i] : ""));
    var L = lin[ops.k[i]];
    lines.push(TYPES[ops.t[i]] + (ops.e[i] < 0 ? " (never completed)" : "") + (anomalies[i] ? " \u00B7 the op an anomaly is about" + (L && L.bad === i ? ": it cannot be placed" : "") : ""));
    var why = (data.why || {})[String(gid(i))];
    if (why) { lines.push("anomaly " + why); }
    if (steps[i]) { lines.push("linearization step " + steps[i][1] + ": state before " + steps[i][2] + ", after " + steps[i][3]); }
    if (L && L.bad === i) { lines.push("state before: " + (L.states.join(" or ") || "?") + " \u00B7 " + L.msg); }
    lines.push("invoked " + fmtT(ops.s[i]) + (ops.e[i] >= 0 ? ", completed " + fmtT(ops.e[i]) + " (" + fmtDur(ops.e[i] - ops.s[i]) + ")" : ""));
    if (data.errors[String(gid(i))] !== undefined) { lines.push("error: " + data.errors[String(gid(i))]); }
    return lines;
  }
  function showDetail(i) {
    selected = i;
    while (panel.firstChild) { panel.removeChild(panel.firstChild); }
    describe(i).forEach(function (line) { html("div", "", panel, line); });
    var prev = svg.querySelector(".tl-op.selected");
    if (prev) { prev.setAttribute("class", prev.getAttribute("class").replace(" selected", "")); }
    var r = document.getElementById("op-" + gid(i));
    if (r) { r.setAttribute("class", r.getAttribute("class") + " selected"); }
  }
  function focusOp(i) {
    if (!(i >= 0 && i < nOps)) { return; }
    if (mode && ops.k[i] !== mode) { setMode(""); if (wrap.tlSelect) { wrap.tlSelect.value = ""; } }
    var s = ops.s[i], e = endOf(i), pad = Math.max((e - s) * 4, data.end / 400, data.unit === "pos" ? 4 : 1);
    view.a = Math.max(0, s - pad); view.b = Math.min(Math.max(data.end, 1), e + pad);
    render();
    showDetail(i);
    var r = document.getElementById("op-" + gid(i));
    if (r) {
      wrap.scrollIntoView({ block: "start" });
      scroller.scrollTop = Math.max(0, AXIS_H + FAULT_H + rowOf(i) * LH - scroller.clientHeight / 2);
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
    var ii = Number(i), st = steps[ii], LL = lin[ops.k[ii]];
    var nd = data.nodes[ops.n[ii]];
    tip.textContent = "op " + gid(ii) + ": " + label(ii) + " \u00B7 " + TYPES[ops.t[ii]] + (nd ? " \u00B7 node " + nd : "") + (m ? " (+" + (Number(m) - 1) + " more ops in this pixel)" : "") +
      (st ? " \u00B7 step " + st[1] + ": " + st[2] + " \u2192 " + st[3] : "") +
      (LL && LL.bad === ii ? " \u00B7 cannot be placed: state before is " + (LL.states.join(" or ") || "?") : "");
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
    if (m) {
      var i = lid(Number(m[1]));
      if (i === undefined) { status.textContent = "op " + m[1] + " is in a quiet stretch this page leaves out"; return false; }
      focusOp(i); return true;
    }
    return false;
  }
  window.addEventListener("hashchange", fromHash);
  var resizeTimer = null;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(render, 150); });
  if (!fromHash()) { render(); }
})();

(function () {
  "use strict";
  // The anomaly table: click a heading to sort by it (again to reverse). Rows keep working
  // as <details> without this script; it only reorders them.
  var table = document.getElementById("anomaly-table");
  if (!table) { return; }
  var body = table.querySelector(".arows") || table;
  var dir = {};
  function val(row, k) {
    var v = row.getAttribute("data-" + k) || "";
    if (k === "n" || k === "t" || k === "fault") { return v === "" ? Infinity : Number(v); }
    var num = Number(v);
    return v !== "" && !isNaN(num) ? num : v;
  }
  Array.prototype.forEach.call(table.querySelectorAll("[data-sort]"), function (b) {
    b.addEventListener("click", function () {
      var k = b.getAttribute("data-sort");
      dir[k] = dir[k] === 1 ? -1 : 1;
      var rows = Array.prototype.slice.call(table.querySelectorAll("details.arow"));
      rows.sort(function (x, y) {
        var a = val(x, k), c = val(y, k);
        if (a === c) { return val(x, "n") - val(y, "n"); }
        if (typeof a === "number" && typeof c === "number") { return (a - c) * dir[k]; }
        return String(a).localeCompare(String(c)) * dir[k];
      });
      rows.forEach(function (r) { body.appendChild(r); });
      table.setAttribute("data-sorted", k + (dir[k] === 1 ? "" : "-desc"));
    });
  });
})();

(function () {
  "use strict";
  // Anomaly diagrams are as wide as their labels need, often wider than the page. Each is
  // fitted to its box when that keeps its text readable (scaled by at least MIN_SCALE), and
  // otherwise kept at full size and scrolled so that the op that cannot be placed (red) is in
  // view, with as much of what led to it as fits on its left. Diagrams in closed anomaly rows
  // are fitted when their row opens; all of them again when the window is resized.
  // The lane labels are a separate SVG that sticks to the box's left edge (the ops scroll
  // under it), so the op is in view when it lies between the labels and the right edge.
  var MIN_SCALE = 0.8, MARGIN = 24;
  function size(svg, scale) {
    if (!svg) { return 0; }
    var w = Number(svg.getAttribute("data-w")) * scale, h = Number(svg.getAttribute("data-h")) * scale;
    svg.setAttribute("width", String(Math.floor(w))); svg.setAttribute("height", String(Math.floor(h)));
    return Math.floor(w);
  }
  function fit(box) {
    var svg = box.querySelector("svg.porcupine"), lanes = box.querySelector("svg.pc-lanes");
    var avail = box.clientWidth;
    if (!svg || !avail) { return; }
    var w = Number(svg.getAttribute("data-w")) + (lanes ? Number(lanes.getAttribute("data-w")) : 0);
    if (!(w > 0)) { return; }
    var scale = Math.min(1, (avail - 1) / w);
    if (scale >= MIN_SCALE) {
      size(svg, scale); size(lanes, scale);
      box.scrollLeft = 0;
      box.setAttribute("data-fit", scale < 1 ? "scaled" : "whole");
      return;
    }
    size(svg, 1);
    var lw = size(lanes, 1);
    var bad = svg.querySelector(".pc-bad rect");
    if (bad) {
      var x0 = Number(bad.getAttribute("x")), x1 = x0 + Number(bad.getAttribute("width"));
      box.scrollLeft = Math.max(0, Math.min(lw + x1 + MARGIN - avail, x0 - MARGIN));
    }
    box.setAttribute("data-fit", "scrolled");
  }
  function fitAll(root) { Array.prototype.forEach.call(root.querySelectorAll(".diagram"), fit); }
  fitAll(document);
  // toggle does not bubble: listen in the capture phase for every <details> of the page
  document.addEventListener("toggle", function (ev) {
    if (ev.target.open) { fitAll(ev.target); }
  }, true);
  var timer = null;
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(function () { fitAll(document); }, 150); });
})();
