// sluice's run timeline: draws the JSON in #sluice-data as one SVG over simulated time (see timeline.rs).
// Wheel: zoom around the pointer; drag: pan; double-click or "reset": the whole run. Hover any mark for details.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("sluice-data").textContent);
  var root = document.getElementById("sluice-timeline");
  var NS = "http://www.w3.org/2000/svg";
  var STATUS = {
    CREATED: "#c7ccd4", SCHEDULED: "#9ecae1", RUNNING: "#2ca25f", RESTARTING: "#fdae6b", FAILING: "#f16913",
    FAILED: "#7f0000", CANCELING: "#bdbdbd", CANCELED: "#737373", FINISHED: "#00441b", PAUSING: "#bcbddc",
    PAUSED: "#6a51a3"
  };
  var ATTEMPT = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7"];
  var OUTCOME_STROKE = { failed: "#d7263d", canceled: "#444", lost: "#ff7f0e", paused: "#6a51a3", running: "#222",
    finished: "none" };
  var CHECKPOINT = { completed: "#2ca25f", failed: "#d7263d", pending: "#bbbbbb" };
  var VIOLATION = "#e6007e", FAULT = "#ff7f0e", PRODUCED = "#3b6fd4", COMMITTED = "#1b9e4b";
  var LEFT = 130, RIGHT = 24, ROW = 16, GAP = 8, CHART = 64;
  var view = { t0: 0, t1: Math.max(data.end_ms, 1) };

  function el(tag, attrs, parent, tip) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (tip) e.setAttribute("data-tip", tip);
    if (parent) parent.appendChild(e);
    return e;
  }
  function html(tag, text, cls, parent) {
    var e = document.createElement(tag);
    if (text !== null) e.textContent = text;
    if (cls) e.className = cls;
    (parent || root).appendChild(e);
    return e;
  }
  function fmt(ms) { return ms >= 10000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(ms < 100 ? 2 : 0) + " ms"; }

  // Greedy rows: each item goes on the first row whose last item ended (with its label) before it starts.
  function stack(items, x, widthOf) {
    var ends = [], rows = [];
    items.forEach(function (it) {
      var a = x(it.from_ms), b = Math.max(x(it.to_ms), a + widthOf(it));
      var r = 0;
      while (r < ends.length && ends[r] > a) r++;
      ends[r] = b + 2;
      rows.push(r);
    });
    return { rows: rows, count: Math.max(1, ends.length) };
  }

  function header() {
    html("h1", data.title);
    var meta = html("div", null, "meta");
    var v = document.createElement("b");
    v.className = data.verdict === "pass" ? "pass" : "fail";
    v.textContent = data.verdict;
    meta.appendChild(v);
    meta.appendChild(document.createTextNode(
      "  ·  scenario " + data.scenario + "  ·  seed " + data.seed + "  ·  last status read " + data.status +
      "  ·  canaries " + (data.canaries.length ? data.canaries.join(", ") : "none") + "  ·  " + fmt(data.end_ms) +
      " simulated  ·  trace_hash " + data.trace_hash));
    if (data.violations.length) {
      var first = data.violations[0];
      html("div", "First violation: " + first.invariant + " at " + fmt(first.at_ms) + ": " + first.detail +
        (data.violations.length > 1 ? "  (+" + (data.violations.length - 1) + " more, thinner lines)" : ""),
        "violation-box");
    }
    var legend = html("div", null, "legend");
    var keys = [["job status: coloured by status", null]];
    Object.keys(STATUS).forEach(function (s) { keys.push([s, STATUS[s]]); });
    keys.push(["fault", FAULT], ["checkpoint completed", CHECKPOINT.completed], ["checkpoint failed", CHECKPOINT.failed],
      ["produced (highest offset)", PRODUCED], ["committed (records)", COMMITTED], ["violation", VIOLATION]);
    keys.forEach(function (k) {
      var s = document.createElement("span");
      if (k[1]) { var i = document.createElement("i"); i.style.background = k[1]; s.appendChild(i); }
      s.appendChild(document.createTextNode(k[0]));
      legend.appendChild(s);
    });
    var help = html("div", "Wheel: zoom around the pointer · drag: pan · double-click: the whole run · hover: details ",
      "help");
    var reset = document.createElement("button");
    reset.textContent = "reset zoom";
    reset.onclick = function () { view = { t0: 0, t1: Math.max(data.end_ms, 1) }; draw(); };
    help.appendChild(reset);
  }

  var svg = null;
  function draw() {
    var width = Math.max(900, (window.innerWidth || 1200) - 40);
    var span = view.t1 - view.t0;
    var x = function (t) { return LEFT + (t - view.t0) / span * (width - LEFT - RIGHT); };
    var fresh = el("svg", { width: width, id: "sluice-svg" });
    var y = 0;
    var layers = { bg: el("g", {}, fresh), fg: el("g", {}, fresh) };

    // Time axis.
    var step = Math.pow(10, Math.floor(Math.log10(span / 8)));
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= 10) { step *= m; return true; } return false; });
    y += 20;
    for (var t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      el("line", { x1: x(t), x2: x(t), y1: y - 4, y2: 10000, "class": "grid" }, layers.bg);
      el("text", { x: x(t) + 2, y: y - 8, "class": "axis" }, layers.bg).textContent = fmt(t);
    }

    function laneLabel(text, top, height) {
      el("text", { x: 6, y: top + height / 2 + 4, "class": "lane" }, layers.fg).textContent = text;
      el("line", { x1: 0, x2: width, y1: top + height + GAP / 2, y2: top + height + GAP / 2, stroke: "#e3e6ea" },
        layers.bg);
    }

    // Job status bands.
    var top = y;
    laneLabel("job status", top, 22);
    data.status_bands.forEach(function (b) {
      el("rect", { x: x(b.from_ms), y: top, width: Math.max(1, x(b.to_ms) - x(b.from_ms)), height: 22,
        fill: STATUS[b.status] || "#999", "class": "status-band", "data-status": b.status }, layers.fg,
        b.status + "  " + fmt(b.from_ms) + " → " + fmt(b.to_ms) + "\n" + b.cause);
      if (x(b.to_ms) - x(b.from_ms) > 70) {
        el("text", { x: x(b.from_ms) + 4, y: top + 15, fill: "#fff", style: "fill:#fff" }, layers.fg).textContent =
          b.status;
      }
    });
    y += 22 + GAP;

    // Faults: a lane of their own (intervals and instants), and overlays on the nodes they hit (below).
    top = y;
    var f = stack(data.faults, x, function (m) { return 10 + m.label.length * 6.2; });
    laneLabel("faults", top, f.count * ROW);
    data.faults.forEach(function (m, i) {
      var ry = top + f.rows[i] * ROW, a = x(m.from_ms), b = x(m.to_ms);
      var tip = m.label + "\n" + fmt(m.from_ms) + (m.to_ms > m.from_ms ? " → " + fmt(m.to_ms) : "");
      if (b - a >= 2) {
        el("rect", { x: a, y: ry + 2, width: b - a, height: ROW - 4, fill: FAULT, "fill-opacity": 0.75, rx: 2,
          "class": "fault" }, layers.fg, tip);
      } else {
        el("path", { d: "M" + a + " " + (ry + 2) + " l5 6 l-5 6 l-5 -6 z", fill: FAULT, "class": "fault" },
          layers.fg, tip);
      }
      el("text", { x: Math.max(a, LEFT) + 7, y: ry + ROW - 4 }, layers.fg).textContent = m.label;
    });
    y += f.count * ROW + GAP;

    // Checkpoints, trigger to outcome.
    if (data.checkpoints.length) {
      top = y;
      var c = stack(data.checkpoints, x, function () { return 4; });
      laneLabel("checkpoints", top, c.count * ROW);
      data.checkpoints.forEach(function (k, i) {
        var ry = top + c.rows[i] * ROW;
        el("rect", { x: x(k.from_ms), y: ry + 3, width: Math.max(3, x(k.to_ms) - x(k.from_ms)), height: ROW - 6,
          fill: CHECKPOINT[k.outcome], rx: 2, "class": "checkpoint" }, layers.fg,
          "checkpoint " + k.epoch + (k.is_final ? " (final)" : "") + " of attempt " + k.attempt + ": " + k.outcome +
          "\n" + fmt(k.from_ms) + " → " + fmt(k.to_ms) + (k.detail ? "\n" + k.detail : ""));
      });
      y += c.count * ROW + GAP;
    }

    // A lane per node, its executions stacked.
    data.lanes.forEach(function (node) {
      top = y;
      var execs = data.executions.filter(function (e) { return e.node === node; });
      var s = stack(execs, x, function () { return 3; });
      var height = Math.max(1, s.count) * ROW;
      laneLabel(node, top, height);
      data.faults.forEach(function (m) {
        if (m.nodes.indexOf(node) < 0 || m.to_ms <= m.from_ms) return;
        el("rect", { x: x(m.from_ms), y: top - 2, width: x(m.to_ms) - x(m.from_ms), height: height + 4,
          fill: FAULT, "fill-opacity": 0.25, "class": "fault-over-node" }, layers.bg, m.label);
      });
      execs.forEach(function (e, i) {
        var ry = top + s.rows[i] * ROW, a = x(e.from_ms), w = Math.max(2, x(e.to_ms) - a);
        var stroke = OUTCOME_STROKE[e.outcome] || "none";
        el("rect", { x: a, y: ry + 2, width: w, height: ROW - 4, rx: 2, fill: ATTEMPT[(e.attempt - 1) % ATTEMPT.length],
          stroke: stroke, "stroke-width": stroke === "none" ? 0 : 1.5, "stroke-dasharray": e.outcome === "canceled" || e.outcome === "lost" ?
          "3 2" : "none", "class": "execution" }, layers.fg,
          node + ": " + e.task + " attempt " + e.attempt + " — " + e.outcome + "\n" + fmt(e.from_ms) + " → " +
          fmt(e.to_ms) + (e.detail ? "\n" + e.detail : ""));
        if (w > 60) {
          el("text", { x: a + 4, y: ry + ROW - 5, style: "fill:#fff" }, layers.fg).textContent =
            e.task + " a" + e.attempt;
        }
      });
      y += height + GAP;
    });

    // Per partition: produced and committed, as steps.
    data.partitions.forEach(function (p) {
      top = y;
      laneLabel("partition " + p.partition, top, CHART);
      var max = 1;
      p.produced.concat(p.committed).forEach(function (q) { max = Math.max(max, q[1]); });
      var yv = function (v) { return top + CHART - v / max * (CHART - 4); };
      [[p.produced, PRODUCED, "produced"], [p.committed, COMMITTED, "committed"]].forEach(function (s) {
        if (!s[0].length) return;
        var d = "M" + x(s[0][0][0]) + " " + yv(0), last = 0;
        s[0].forEach(function (q) { d += " H" + x(q[0]) + " V" + yv(q[1]); last = q[1]; });
        d += " H" + x(data.end_ms);
        el("path", { d: d, fill: "none", stroke: s[1], "stroke-width": 1.6, "class": "series-" + s[2] }, layers.fg,
          "partition " + p.partition + ": " + s[2] + " " + last + " at the end");
      });
      el("text", { x: 6, y: top + CHART - 2, "class": "axis" }, layers.fg).textContent = "0…" + max;
      y += CHART + GAP;
    });

    if (data.partitions_omitted) {
      el("text", { x: 6, y: y + 12, "class": "axis" }, layers.fg).textContent =
        "… and " + data.partitions_omitted + " more partitions, not drawn";
      y += 18;
    }

    // Violations: the first one bold, with its flag.
    data.violations.slice().reverse().forEach(function (v, i, all) {
      var first = i === all.length - 1, vx = x(v.at_ms);
      el("line", { x1: vx, x2: vx, y1: 14, y2: y, stroke: VIOLATION, "stroke-width": first ? 3 : 1,
        "class": first ? "violation first" : "violation" }, layers.fg,
        v.invariant + " at " + fmt(v.at_ms) + "\n" + v.detail);
      if (first) {
        var label = "✖ " + v.invariant + " @ " + fmt(v.at_ms);
        var lw = label.length * 6.6 + 10;
        var lx = Math.min(vx + 2, width - lw - 2);
        el("rect", { x: lx, y: 2, width: lw, height: 16, fill: VIOLATION, rx: 3, "class": "violation-flag" },
          layers.fg, v.invariant + " at " + fmt(v.at_ms) + "\n" + v.detail);
        el("text", { x: lx + 5, y: 14, style: "fill:#fff;font-weight:600" }, layers.fg).textContent = label;
      }
    });

    // Whatever the window cuts at the left goes under the lane labels' background.
    el("rect", { x: 0, y: 0, width: LEFT - 2, height: y, fill: "#fff" }, layers.fg);
    fresh.querySelectorAll("text.lane").forEach(function (t) { layers.fg.appendChild(t); });
    fresh.setAttribute("height", y + 4);
    if (svg) root.replaceChild(fresh, svg); else root.appendChild(fresh);
    svg = fresh;
    attach(x, width);
  }

  var tip = document.createElement("div");
  tip.id = "tip";
  document.body.appendChild(tip);

  function attach(x, width) {
    var drag = null;
    svg.addEventListener("mousemove", function (ev) {
      if (drag) {
        var dt = (ev.clientX - drag.x) / (width - LEFT - RIGHT) * (drag.t1 - drag.t0);
        view = { t0: drag.t0 - dt, t1: drag.t1 - dt };
        draw();
        return;
      }
      var t = ev.target.getAttribute && ev.target.getAttribute("data-tip");
      if (t) {
        tip.textContent = t;
        tip.style.display = "block";
        tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 470) + "px";
        tip.style.top = (ev.clientY + 12) + "px";
      } else {
        tip.style.display = "none";
      }
    });
    svg.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    svg.addEventListener("mousedown", function (ev) {
      drag = { x: ev.clientX, t0: view.t0, t1: view.t1 };
      svg.classList.add("dragging");
      var up = function () { drag = null; document.removeEventListener("mouseup", up); };
      document.addEventListener("mouseup", up);
    });
    svg.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var rect = svg.getBoundingClientRect();
      var at = view.t0 + (ev.clientX - rect.left - LEFT) / (width - LEFT - RIGHT) * (view.t1 - view.t0);
      var k = ev.deltaY > 0 ? 1.25 : 0.8;
      var t0 = at - (at - view.t0) * k, t1 = at + (view.t1 - at) * k;
      if (t1 - t0 < 0.5) return;
      view = { t0: Math.max(-data.end_ms * 0.05, t0), t1: Math.min(data.end_ms * 1.05 + 1, t1) };
      draw();
    }, { passive: false });
    svg.addEventListener("dblclick", function () { view = { t0: 0, t1: Math.max(data.end_ms, 1) }; draw(); });
  }

  header();
  draw();
  window.addEventListener("resize", draw);
  document.body.setAttribute("data-rendered", "yes");
})();
