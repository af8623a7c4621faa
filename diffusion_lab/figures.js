// The static twin of diffusion_lab.figures.Explorer: sliders over precomputed frames, drawn on canvases.
// data = {controls: [{name, labels, play, start}], panels: [{name, title, xlabel, ylabel, xlim, ylim,
// width, height, layers}], frames: [{<panel name>: [layers], readout}], caption}.
function dlExplorer(id, data) {
  "use strict";
  const root = document.getElementById(id);
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";

  // Arrays arrive base64 encoded: int16 times a scale (coordinates) or uint8 / 255 (pixels).
  function decode(d) {
    if (d.cache) return d.cache;
    const bin = atob(d.u8 !== undefined ? d.u8 : d.i16), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    let out;
    if (d.u8 !== undefined) {
      out = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] / 255;
    } else {
      const view = new DataView(bytes.buffer);
      out = new Float32Array(bytes.length / 2);
      for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true) * d.scale;
    }
    Object.defineProperty(d, "cache", {value: out, enumerable: false});
    return out;
  }

  function el(tag, attrs, parent) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "text" ? (e.textContent = v) : e.setAttribute(k, v)));
    if (parent) parent.appendChild(e);
    return e;
  }

  // Controls: one slider per parameter, with its value shown; optional play/pause.
  const state = data.controls.map((c) => c.start || 0);
  const bar = el("div", {class: "dl-controls"}, root);
  const sliders = data.controls.map((c, i) => {
    const label = el("label", {style: "margin-right:14px;white-space:nowrap"}, bar);
    el("span", {text: c.name + " "}, label);
    const input = el("input", {type: "range", min: 0, max: c.labels.length - 1, step: 1, value: state[i],
                               class: "dl-slider", "aria-label": c.name, style: "vertical-align:middle"}, label);
    const value = el("span", {class: "dl-value", style: "display:inline-block;min-width:3em;margin-left:4px"}, label);
    input.addEventListener("input", () => { state[i] = +input.value; draw(); });
    if (c.play) {
      const button = el("button", {type: "button", class: "dl-play", text: "play"}, label);
      let timer = null;
      button.addEventListener("click", () => {
        if (timer) { clearInterval(timer); timer = null; button.textContent = "play"; return; }
        button.textContent = "pause";
        timer = setInterval(() => { state[i] = (state[i] + 1) % c.labels.length; input.value = state[i]; draw(); }, 400);
      });
    }
    return {input, value};
  });
  const readout = el("div", {class: "dl-readout", style: "margin:4px 0 6px 0;min-height:1.2em"}, root);
  const row = el("div", {style: "display:flex;gap:8px;flex-wrap:wrap;align-items:flex-start"}, root);
  const canvases = data.panels.map((p) =>
    el("canvas", {width: p.width, height: p.height, class: "dl-panel", "data-panel": p.name,
                  style: "border:1px solid #ccc"}, el("figure", {style: "margin:0"}, row)));
  if (data.caption) el("div", {class: "dl-caption", text: data.caption, style: "margin-top:4px;color:#444"}, root);

  function drawPanel(p, canvas, layers) {
    const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
    const L = 36, R = 6, T = 18, B = 28, w = W - L - R, h = H - T - B;
    const X = (x) => L + (x - p.xlim[0]) / (p.xlim[1] - p.xlim[0]) * w;
    const Y = (y) => T + (p.ylim[1] - y) / (p.ylim[1] - p.ylim[0]) * h;
    ctx.clearRect(0, 0, W, H);
    ctx.save(); ctx.beginPath(); ctx.rect(L, T, w, h); ctx.clip();
    layers.forEach((layer) => {
      ctx.fillStyle = ctx.strokeStyle = layer.color || "#000";
      if (layer.type === "points") {
        const xy = decode(layer.xy), s = layer.size;
        for (let i = 0; i < xy.length; i += 2) ctx.fillRect(X(xy[i]) - s / 2, Y(xy[i + 1]) - s / 2, s, s);
      } else if (layer.type === "line") {
        const xy = decode(layer.xy);
        ctx.lineWidth = layer.width; ctx.beginPath();
        for (let i = 0; i < xy.length; i += 2) (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(xy[i]), Y(xy[i + 1]));
        ctx.stroke();
      } else if (layer.type === "vline") {
        ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(X(layer.x), T); ctx.lineTo(X(layer.x), T + h); ctx.stroke();
      } else if (layer.type === "circle") {
        ctx.lineWidth = 1.5; ctx.beginPath();
        ctx.ellipse(X(layer.x), Y(layer.y), Math.abs(X(layer.r) - X(0)), Math.abs(Y(layer.r) - Y(0)), 0, 0, 2 * Math.PI);
        ctx.stroke();
      } else if (layer.type === "image" || layer.type === "grid") {
        const px = decode(layer.pixels), n = layer.n || 1, cols = layer.cols || 1, rows = Math.ceil(n / cols);
        const tw = layer.w + (layer.type === "grid" ? 1 : 0), th = layer.h + (layer.type === "grid" ? 1 : 0);
        const off = document.createElement("canvas"); off.width = cols * tw; off.height = rows * th;
        const octx = off.getContext("2d"), img = octx.createImageData(off.width, off.height);
        img.data.fill(255);
        for (let k = 0; k < n; k++) for (let r = 0; r < layer.h; r++) for (let c = 0; c < layer.w; c++) {
          const g = Math.round(255 * px[(k * layer.h + r) * layer.w + c]);
          const at = 4 * ((Math.floor(k / cols) * th + r) * off.width + (k % cols) * tw + c);
          img.data[at] = img.data[at + 1] = img.data[at + 2] = g;
        }
        octx.putImageData(img, 0, 0);
        const e = layer.extent || [p.xlim[0], p.xlim[1], p.ylim[0], p.ylim[1]];
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(off, X(e[0]), Y(e[3]), X(e[1]) - X(e[0]), Y(e[2]) - Y(e[3]));
      } else if (layer.type === "bars") {
        const v = decode(layer.values);
        for (let i = 0; i < v.length; i++) {
          ctx.fillStyle = i === layer.highlight ? "#000" : layer.color;
          const top = Y(Math.max(v[i], 0)), bottom = Y(Math.min(v[i], 0));
          ctx.fillRect(X(i - 0.4), top, X(i + 0.4) - X(i - 0.4), bottom - top);
        }
      }
    });
    ctx.restore();
    // Axes, limits, labels, title.
    ctx.strokeStyle = ctx.fillStyle = "#333"; ctx.lineWidth = 1; ctx.strokeRect(L, T, w, h);
    ctx.font = "10px sans-serif";
    const fmt = (v) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(0) : +v.toPrecision(3));
    ctx.textAlign = "left"; ctx.fillText(fmt(p.xlim[0]), L, T + h + 11);
    ctx.textAlign = "right"; ctx.fillText(fmt(p.xlim[1]), L + w, T + h + 11);
    ctx.fillText(fmt(p.ylim[0]), L - 2, T + h); ctx.fillText(fmt(p.ylim[1]), L - 2, T + 9);
    ctx.textAlign = "center"; ctx.fillText(p.xlabel || "", L + w / 2, H - 4);
    ctx.font = "bold 11px sans-serif"; ctx.fillText(p.title || "", L + w / 2, 12);
    if (p.ylabel) {
      ctx.save(); ctx.font = "10px sans-serif"; ctx.translate(10, T + h / 2); ctx.rotate(-Math.PI / 2);
      ctx.fillText(p.ylabel, 0, 0); ctx.restore();
    }
  }

  function draw() {
    let f = 0;
    data.controls.forEach((c, i) => { f = f * c.labels.length + state[i]; sliders[i].value.textContent = c.labels[state[i]]; });
    const frame = data.frames[f];
    readout.textContent = frame.readout || "";
    data.panels.forEach((p, k) => drawPanel(p, canvases[k], (p.layers || []).concat(frame[p.name] || [])));
  }
  draw();
}
