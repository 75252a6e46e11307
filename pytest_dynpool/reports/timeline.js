// Draws the dynpool timeline from the JSON in #dynpool-data. Test ids are only ever
// written with textContent or setAttribute: never parsed as HTML.
(function () {
  "use strict";
  var began = performance.now();
  var SVG = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("dynpool-data").textContent);
  var OUTCOMES = ["passed", "failed", "error", "skipped", "xfailed", "xpassed", "interrupted", "not run"];
  var PHASE = { P: "passed", F: "failed", S: "skipped", "-": "-" };
  var BASE_WIDTH = 1100, ROW = 16;
  var LANE = data.jobs.length > 30 ? 20 : 44; // many jobs: thinner lanes, all of them still
  var wall = Math.max(data.wall, 1e-3);
  var units = 1000 / wall; // viewBox units per second: the viewBox is 1000 wide

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }
  function color(jobIndex) {
    return jobIndex < 0 ? "#8a94a3" : "hsl(" + ((jobIndex * 137.508) % 360).toFixed(1) + ",60%,52%)";
  }
  function ms(seconds) { return (seconds * 1000).toFixed(seconds < 1 ? 1 : 0) + " ms"; }
  function fixed(value) { return value === null ? "-" : value.toFixed(2); }

  var root = document.getElementById("dynpool");
  var run = data.run;
  root.appendChild(el("h1", {}, "dynpool timeline"));
  var bound = run.bounded_by.term + (run.bounded_by.job === null ? "" : " " + run.bounded_by.job);
  root.appendChild(el("div", { "class": "run" },
    data.items.length + " items, " + run.workers + " workers, started " + run.started_at +
    "; wall " + run.wall_seconds.toFixed(2) + " s (pooled phase " + run.pool_wall_seconds.toFixed(2) +
    " s, lower bound " + run.lower_bound_seconds.toFixed(2) + " s, set by " + bound +
    "); peak " + run.peak_in_flight + " in flight; exit status " + run.exit_status +
    (run.interrupted ? "; interrupted" : "") +
    (run.not_started ? "; " + run.not_started + " not started" : "") +
    (run.timed_out.length ? "; " + run.timed_out.length + " timed out" : "")));

  // The legend: the jobs that held the run back most; the others behind a click when many.
  var LEGEND_SHOWN = 24;
  var legend = el("div", { "class": "legend" });
  var more = el("details", {});
  more.appendChild(el("summary", {}, (data.jobs.length - LEGEND_SHOWN) + " more jobs"));
  function legendEntry(name, jobIndex) {
    var entry = el("span", {});
    entry.appendChild(el("i", { style: "background:" + color(jobIndex) }));
    entry.appendChild(document.createTextNode(name));
    return entry;
  }
  data.jobs.forEach(function (job, index) {
    (index < LEGEND_SHOWN ? legend : more).appendChild(legendEntry(job.name, index));
  });
  legend.appendChild(legendEntry("run alone (exclusive)", -1));
  if (data.jobs.length > LEGEND_SHOWN) legend.appendChild(more);
  root.appendChild(legend);

  var controls = el("div", { "class": "controls" }, "zoom ");
  var zoom = el("select", { id: "zoom" });
  [1, 2, 4, 8, 16, 32, 64, 128].forEach(function (factor) {
    zoom.appendChild(el("option", { value: String(factor) }, factor + "x"));
  });
  controls.appendChild(zoom);
  controls.appendChild(el("span", { "class": "note" },
    "  click a bar for its test; red outline: failed or error; dashed: the job's (effective) cap; red ticks: 429/503"));
  root.appendChild(controls);
  var details = el("div", { id: "details" }, "click a bar");
  root.appendChild(details);

  // Per worker: one row of bars.
  var chart = el("div", { "class": "chart" });
  var labels = el("div", { "class": "labels" });
  var scroll = el("div", { "class": "scroll" });
  chart.appendChild(labels);
  chart.appendChild(scroll);
  root.appendChild(el("h2", {}, "Workers: a row per thread, a bar per item"));
  root.appendChild(chart);
  var svgs = [];
  function timeSvg(height) {
    var svg = svgEl("svg", { viewBox: "0 0 1000 " + height, preserveAspectRatio: "none",
      width: BASE_WIDTH, height: height });
    svgs.push(svg);
    return svg;
  }
  var axisHeight = 16;
  labels.appendChild(el("div", {}, "seconds"));
  var axis = svgEl("svg", { width: BASE_WIDTH, height: axisHeight, "class": "axis" });
  scroll.appendChild(axis);
  function drawAxis(width) {
    while (axis.firstChild) axis.removeChild(axis.firstChild);
    axis.setAttribute("width", width);
    var steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
    var step = steps.find(function (s) { return (s / wall) * width >= 70; }) || 3600;
    for (var t = 0; t <= wall; t += step) {
      var x = (t / wall) * width;
      var text = svgEl("text", { x: x + 2, y: 12 });
      text.textContent = (step < 1 ? t.toFixed(3) : t.toFixed(0)) + " s";
      axis.appendChild(text);
      axis.appendChild(svgEl("line", { x1: x, x2: x, y1: 0, y2: axisHeight, stroke: "#c3cad4" }));
    }
  }
  data.workers.forEach(function (name) { labels.appendChild(el("div", {}, name)); });
  var bars = timeSvg(data.workers.length * ROW);
  bars.setAttribute("id", "bars");
  var minWidth = 0.4; // viewBox units, about half a pixel at 1x: a short item stays visible
  var fragment = document.createDocumentFragment();
  data.items.forEach(function (item, index) {
    var nodeid = item[0], job = item[1], worker = item[2], start = item[3], end = item[4];
    var outcome = OUTCOMES[item[5]];
    var rect = svgEl("rect", {
      "class": "bar" + (outcome === "failed" || outcome === "error" || item[7] ? " bad" : ""),
      "data-i": index,
      x: start * units, y: worker * ROW + 2,
      width: Math.max((end - start) * units, minWidth), height: ROW - 4,
      fill: color(job)
    });
    var title = svgEl("title", {});
    title.textContent = nodeid + "\n" + ms(end - start) + ", " + outcome + (item[7] ? " (timed out)" : "");
    rect.appendChild(title);
    fragment.appendChild(rect);
  });
  bars.appendChild(fragment);
  scroll.appendChild(bars);
  var picked = null;
  bars.addEventListener("click", function (event) {
    var index = event.target.getAttribute && event.target.getAttribute("data-i");
    if (index === null || index === undefined) return;
    var item = data.items[Number(index)];
    if (picked) picked.classList.remove("picked");
    picked = event.target;
    picked.classList.add("picked");
    var phases = item[6].split("").map(function (c) { return PHASE[c]; });
    details.textContent = item[0] + "\njob " + (item[1] < 0 ? "(run alone)" : data.jobs[item[1]].name) +
      ", " + data.workers[item[2]] + ", " + item[3].toFixed(3) + " s to " + item[4].toFixed(3) +
      " s (" + ms(item[4] - item[3]) + "), " + OUTCOMES[item[5]] + (item[7] ? " (timed out)" : "") +
      "; setup " + phases[0] + ", call " + phases[1] + ", teardown " + phases[2];
  });

  // Per job: in flight over time against its cap; adaptive jobs: effective cap and 429/503.
  root.appendChild(el("h2", {}, "Jobs: items in flight against the cap"));
  var laneChart = el("div", { "class": "chart" });
  var laneLabels = el("div", { "class": "labels" });
  var laneScroll = el("div", { "class": "scroll" });
  laneChart.appendChild(laneLabels);
  laneChart.appendChild(laneScroll);
  root.appendChild(laneChart);
  var laneSvg = timeSvg(data.jobs.length * LANE);
  var stepsOfJob = data.jobs.map(function () { return []; });
  data.items.forEach(function (item) {
    if (item[1] >= 0) { stepsOfJob[item[1]].push([item[3], 1], [item[4], -1]); }
  });
  data.jobs.forEach(function (job, jobIndex) {
    laneLabels.appendChild(el("div", { "class": LANE > 20 ? "lane-label" : "lane-label thin" },
      job.name + " (cap " + job.cap + (job.adaptive ? ", adaptive" : "") + ", peak " + job.peak_in_flight + ")"));
    var group = svgEl("g", { "class": "lane", "data-job": job.name });
    var top = jobIndex * LANE + 2, height = LANE - 6;
    var changes = (data.caps[job.name] || []);
    var highest = Math.max(job.cap, job.peak_in_flight, 1);
    function y(count) { return top + height - (count / highest) * height; }
    var steps = stepsOfJob[jobIndex];
    steps.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    var path = "M0," + y(0), count = 0, peak = 0;
    steps.forEach(function (step) {
      count += step[1];
      peak = Math.max(peak, count);
      path += "H" + step[0] * units + "V" + y(count);
    });
    group.setAttribute("data-peak", peak); // drawn from the items' spans, not the job's figure
    path += "H1000V" + y(0) + "Z";
    group.appendChild(svgEl("path", { "class": "inflight", d: path, fill: color(jobIndex), stroke: color(jobIndex) }));
    var capPath = "M0," + y(job.cap);
    changes.forEach(function (change) { capPath += "H" + change[0] * units + "V" + y(change[1]); });
    capPath += "H1000";
    group.appendChild(svgEl("path", { "class": "cap", d: capPath }));
    (data.overloads[job.name] || []).forEach(function (at) {
      group.appendChild(svgEl("line", { "class": "overload", x1: at * units, x2: at * units,
        y1: top + height - 6, y2: top + height + 2 }));
    });
    var title = svgEl("title", {});
    title.textContent = job.name + ": cap " + job.cap + ", peak " + job.peak_in_flight + " in flight";
    group.appendChild(title);
    laneSvg.appendChild(group);
  });
  laneScroll.appendChild(laneSvg);

  root.appendChild(el("h2", {}, "Jobs, by how much each held the run back"));
  root.appendChild(el("div", { "class": "note" },
    "bound s = the job's own term of the lower bound (its work / its cap, its rate, or its requests packed into its slots): no schedule could finish the job sooner; " +
    "the run's lower bound is the largest of these, the total work / workers and the longest item"));
  var table = el("table", { id: "jobs" });
  var head = el("tr", {});
  ["job", "declared at", "cap", "effective cap", "rate", "items", "passed", "failed", "skipped",
   "peak", "busy s", "bound s", "of LB"].forEach(function (name) { head.appendChild(el("th", {}, name)); });
  table.appendChild(head);
  data.jobs.forEach(function (job) {
    var row = el("tr", {});
    [job.name, job.declared_at, String(job.cap) + (job.adaptive ? " adaptive" : ""),
     job.effective_cap + " (min " + job.min_effective_cap + ")", job.rate || "-", String(job.items),
     String(job.outcomes.passed || 0), String(job.outcomes.failed || 0), String(job.outcomes.skipped || 0),
     String(job.peak_in_flight), fixed(job.busy_seconds), fixed(job.bound_seconds),
     run.lower_bound_seconds > 0 ? Math.round(100 * job.bound_seconds / run.lower_bound_seconds) + " %" : "-"
    ].forEach(function (cell) { row.appendChild(el("td", {}, cell)); });
    table.appendChild(row);
  });
  root.appendChild(table);

  if (data.http.length) {
    root.appendChild(el("h2", {}, "HTTP per job"));
    var httpTable = el("table", { id: "http" });
    var httpHead = el("tr", {});
    ["job", "requests", "2xx", "4xx", "5xx", "429/503", "retries", "errors", "p50 ms", "p95 ms", "p99 ms", "cap changes"]
      .forEach(function (name) { httpHead.appendChild(el("th", {}, name)); });
    httpTable.appendChild(httpHead);
    data.http.forEach(function (traffic) {
      var row = el("tr", {});
      var latency = traffic.latency_seconds;
      function latencyMs(value) { return value === null ? "-" : (value * 1000).toFixed(0); }
      [traffic.job, String(traffic.requests), String(traffic.status_classes["2xx"] || 0),
       String(traffic.status_classes["4xx"] || 0), String(traffic.status_classes["5xx"] || 0),
       String(traffic.overloaded), String(traffic.retries), String(traffic.errors),
       latencyMs(latency.p50), latencyMs(latency.p95), latencyMs(latency.p99),
       String(traffic.cap_changes.length)].forEach(function (cell) { row.appendChild(el("td", {}, cell)); });
      httpTable.appendChild(row);
    });
    root.appendChild(httpTable);
  }

  var failed = data.items.filter(function (item) { return item[5] === 1 || item[5] === 2 || item[7]; });
  root.appendChild(el("h2", {}, "Failures and errors (" + failed.length + ")"));
  var list = el("ul", { "class": "failures" });
  failed.slice(0, 1000).forEach(function (item) {
    list.appendChild(el("li", {}, item[0] + " (" + OUTCOMES[item[5]] + (item[7] ? ", timed out" : "") + ")"));
  });
  if (failed.length > 1000) list.appendChild(el("li", {}, "... and " + (failed.length - 1000) + " more"));
  root.appendChild(list);

  function applyZoom() {
    var width = BASE_WIDTH * Number(zoom.value);
    svgs.forEach(function (svg) { svg.setAttribute("width", width); });
    drawAxis(width);
  }
  zoom.addEventListener("change", applyZoom);
  applyZoom();
  document.documentElement.setAttribute("data-render-ms", (performance.now() - began).toFixed(0));
})();
