// The script of rune report's page (report/html_report.cpp embeds this file at build time): draws
// the runs' curves of the chosen metric on the canvas from the JSON in #rune-data, and redraws on
// every control. Plain browser JavaScript, no library, no network.
//
// #rune-data: {"runs": [{"name", "color", "series": {key: [[step, seconds, value], ...]}}],
//              "keys": [every key in the runs' metrics.jsonl but step], "default": key}
// A null seconds or value is a point the axis or the log could not give (a non-finite metric).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("rune-data").textContent);
  const select = document.getElementById("metric");
  const canvas = document.getElementById("chart");
  const smoothing = document.getElementById("smoothing");
  const smoothingValue = document.getElementById("smoothing-value");
  const logY = document.getElementById("log-y");
  const readout = document.getElementById("readout");
  const hidden = new Set();
  let hoverX = null;  // the mouse's x in canvas pixels, or null
  let layout = null;  // what the last draw mapped, for the hover readout

  for (const key of data.keys) {
    const option = document.createElement("option");
    option.value = key;
    option.textContent = key;
    select.appendChild(option);
  }
  if (data.default) select.value = data.default;

  // The view in the address's fragment, so that a view can be linked to and reloaded:
  // report.html#metric=val_loss&x=time&smoothing=0&log=1
  const asked = new URLSearchParams(window.location.hash.slice(1));
  if (asked.has("metric") && data.keys.includes(asked.get("metric"))) select.value = asked.get("metric");
  if (asked.get("x") === "time") document.querySelector("input[name=x-axis][value=time]").checked = true;
  if (asked.has("smoothing")) {
    const w = Number(asked.get("smoothing"));
    if (w >= 0 && w <= 0.99) smoothing.value = String(w);
  }
  logY.checked = asked.get("log") === "1";

  function xAxis() {
    return document.querySelector("input[name=x-axis]:checked").value;
  }

  // loss <-> val_loss: the validation twin of a training metric and back, when a run logged it
  function twin(key) {
    const other = key.startsWith("val_") ? key.slice(4) : "val_" + key;
    return data.keys.includes(other) ? other : null;
  }

  // TensorBoard's smoothing: an exponential moving average, divided by (1 - w^n) so that it does
  // not start from zero. A non-finite value is kept as it is and leaves the average alone.
  function smooth(ys, w) {
    if (w <= 0) return ys.slice();
    let last = 0;
    let n = 0;
    return ys.map(function (y) {
      if (!Number.isFinite(y)) return y;
      last = last * w + (1 - w) * y;
      n += 1;
      return last / (1 - Math.pow(w, n));
    });
  }

  // The points of one run's key on the chosen axis: {xs, ys}, sorted by x, unplaceable ones out.
  function points(run, key, axis) {
    const raw = run.series[key] || [];
    const out = [];
    for (const p of raw) {
      const x = axis === "time" ? p[1] : p[0];
      if (x === null) continue;
      out.push([x, p[2] === null ? NaN : p[2]]);
    }
    out.sort(function (a, b) { return a[0] - b[0]; });
    return { xs: out.map(function (p) { return p[0]; }), ys: out.map(function (p) { return p[1]; }) };
  }

  // About n round tick values covering [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const rough = (hi - lo) / n;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const unit = [1, 2, 5, 10].map(function (m) { return m * power; }).find(function (u) { return u >= rough; });
    const out = [];
    for (let t = Math.ceil(lo / unit) * unit; t <= hi + unit * 1e-9; t += unit) out.push(Math.abs(t) < unit * 1e-9 ? 0 : t);
    return out;
  }

  function formatNumber(v) {
    if (!Number.isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function formatSeconds(s) {
    s = Math.round(s);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = String(s % 60).padStart(2, "0");
    return h > 0 ? h + ":" + String(m).padStart(2, "0") + ":" + sec : m + ":" + sec;
  }

  function draw() {
    const key = select.value;
    const axis = xAxis();
    const w = Number(smoothing.value);
    smoothingValue.textContent = w.toFixed(2);
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 900;
    const height = canvas.clientHeight || 420;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px system-ui, 'DejaVu Sans', sans-serif";

    // every visible run's solid (the key) and dashed (its twin) lines
    const other = key ? twin(key) : null;
    const lines = [];
    data.runs.forEach(function (run, i) {
      if (hidden.has(i)) return;
      for (const [k, dashed] of [[key, false], [other, true]]) {
        if (!k) continue;
        const p = points(run, k, axis);
        if (p.xs.length === 0) continue;
        lines.push({ run: run, index: i, key: k, dashed: dashed, xs: p.xs, raw: p.ys, ys: smooth(p.ys, w) });
      }
    });
    const wantLog = logY.checked;
    let positive = true;
    let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
    for (const line of lines)
      line.xs.forEach(function (x, j) {
        for (const y of [line.raw[j], line.ys[j]]) {
          if (!Number.isFinite(y)) continue;
          if (y <= 0) positive = false;
          xmin = Math.min(xmin, x);
          xmax = Math.max(xmax, x);
          ymin = Math.min(ymin, y);
          ymax = Math.max(ymax, y);
        }
      });
    const log = wantLog && positive;
    // what is drawn, for the address and for a test reading the page: "val_loss time 0.00 log"
    document.body.setAttribute("data-view", [key, axis, w.toFixed(2)].concat(log ? ["log"] : []).join(" "));
    const fragment = "metric=" + encodeURIComponent(key) + "&x=" + axis + "&smoothing=" + w + (wantLog ? "&log=1" : "");
    if (window.location.hash.slice(1) !== fragment) {
      try {
        history.replaceState(null, "", "#" + fragment);
      } catch (e) {
        // a browser that refuses it (for a page opened from disk, say) keeps the address as it was
      }
    }
    const left = 64, right = 16, top = 14, bottom = 38;
    const plotW = width - left - right, plotH = height - top - bottom;
    ctx.fillStyle = "#3a444e";
    if (!(xmax >= xmin)) {
      ctx.textAlign = "center";
      ctx.fillText(key ? "no visible run has logged " + key : "no metrics logged yet", width / 2, height / 2);
      layout = null;
      readout.textContent = "\u00a0";
      return;
    }
    if (xmax === xmin) { xmin -= 1; xmax += 1; }
    if (ymax === ymin) { const pad = Math.abs(ymin) * 0.05 || 1; ymin -= pad; ymax += pad; }
    const ty = log ? Math.log10 : function (y) { return y; };
    let ylo = ty(ymin), yhi = ty(ymax);
    const margin = (yhi - ylo) * 0.04;
    ylo -= margin;
    yhi += margin;
    const sx = function (x) { return left + ((x - xmin) / (xmax - xmin)) * plotW; };
    const sy = function (y) { return top + (1 - (ty(y) - ylo) / (yhi - ylo)) * plotH; };

    // grid and axes
    ctx.strokeStyle = "#e6e9ee";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const yTicks = log
      ? ticks(Math.floor(ylo), Math.ceil(yhi), 6).filter(function (t) { return t >= ylo && t <= yhi; }).map(function (t) { return Math.pow(10, t); })
      : ticks(ylo, yhi, 6);
    for (const t of yTicks) {
      const y = sy(t);
      if (y < top - 0.5 || y > top + plotH + 0.5) continue;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + plotW, y);
      ctx.stroke();
      ctx.fillText(formatNumber(t), left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of ticks(xmin, xmax, 8)) {
      const x = sx(t);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + plotH);
      ctx.stroke();
      ctx.fillText(axis === "time" ? formatSeconds(t) : formatNumber(t), x, top + plotH + 5);
    }
    ctx.fillText(axis === "time" ? "elapsed time (m:ss)" : "step", left + plotW / 2, top + plotH + 21);
    ctx.strokeStyle = "#9aa3ad";
    ctx.strokeRect(left, top, plotW, plotH);
    ctx.save();
    ctx.translate(14, top + plotH / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(key + (other ? " (dashed: " + other + ")" : "") + (log ? ", log scale" : ""), 0, 0);
    ctx.restore();

    // the lines: raw values faint under the smoothed ones; a lone point as a dot
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, plotW, plotH);
    ctx.clip();
    function path(xs, ys) {
      ctx.beginPath();
      let open = false;
      xs.forEach(function (x, j) {
        if (!Number.isFinite(ys[j]) || (log && ys[j] <= 0)) { open = false; return; }
        if (open) ctx.lineTo(sx(x), sy(ys[j]));
        else ctx.moveTo(sx(x), sy(ys[j]));
        open = true;
      });
      ctx.stroke();
    }
    for (const line of lines) {
      ctx.strokeStyle = line.run.color;
      ctx.fillStyle = line.run.color;
      ctx.setLineDash(line.dashed ? [6, 4] : []);
      if (w > 0) {
        ctx.globalAlpha = 0.25;
        ctx.lineWidth = 1;
        path(line.xs, line.raw);
      }
      ctx.globalAlpha = 1;
      ctx.lineWidth = 2;
      path(line.xs, line.ys);
      if (line.xs.length <= 30)
        line.xs.forEach(function (x, j) {
          if (!Number.isFinite(line.ys[j])) return;
          ctx.beginPath();
          ctx.arc(sx(x), sy(line.ys[j]), 2.5, 0, 2 * Math.PI);
          ctx.fill();
        });
    }
    ctx.setLineDash([]);
    layout = { lines: lines, sx: sx, xmin: xmin, xmax: xmax, left: left, plotW: plotW, axis: axis };
    if (hoverX !== null && hoverX >= left && hoverX <= left + plotW) {
      ctx.strokeStyle = "#5b6570";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(hoverX, top);
      ctx.lineTo(hoverX, top + plotH);
      ctx.stroke();
    }
    ctx.restore();
    showReadout();
  }

  // Under the chart: each visible line's (smoothed) value nearest the mouse.
  function showReadout() {
    readout.textContent = "";
    if (!layout || hoverX === null || hoverX < layout.left || hoverX > layout.left + layout.plotW) {
      readout.textContent = "\u00a0";
      return;
    }
    const x = layout.xmin + ((hoverX - layout.left) / layout.plotW) * (layout.xmax - layout.xmin);
    for (const line of layout.lines) {
      let best = -1;
      line.xs.forEach(function (lx, j) {
        if (best < 0 || Math.abs(lx - x) < Math.abs(line.xs[best] - x)) best = j;
      });
      if (best < 0) continue;
      const span = document.createElement("span");
      span.style.color = line.run.color;
      const at = layout.axis === "time" ? formatSeconds(line.xs[best]) : "step " + line.xs[best];
      span.textContent = line.run.name + " " + line.key + " " + formatNumber(line.ys[best]) + " (" + at + ")";
      readout.appendChild(span);
    }
  }

  select.addEventListener("change", draw);
  smoothing.addEventListener("input", draw);
  logY.addEventListener("change", draw);
  for (const radio of document.querySelectorAll("input[name=x-axis]")) radio.addEventListener("change", draw);
  window.addEventListener("resize", draw);
  canvas.addEventListener("mousemove", function (e) {
    hoverX = e.clientX - canvas.getBoundingClientRect().left;
    draw();
  });
  canvas.addEventListener("mouseleave", function () {
    hoverX = null;
    draw();
  });
  for (const item of document.querySelectorAll("#legend li")) {
    item.addEventListener("click", function () {
      const i = Number(item.dataset.run);
      if (hidden.has(i)) hidden.delete(i);
      else hidden.add(i);
      item.classList.toggle("hidden", hidden.has(i));
      draw();
    });
  }
  for (const image of document.querySelectorAll("figure img")) {
    image.addEventListener("click", function () { image.classList.toggle("zoomed"); });
  }
  draw();
  // the mark the browser test looks for: the script ran to its end
  document.body.setAttribute("data-rendered", "yes");
})();
