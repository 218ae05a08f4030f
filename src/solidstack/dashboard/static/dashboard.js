// The dashboard's script: live counts, queue table and charts over the dashboard's own Action Cable endpoint
// (the vendored @rails/actioncable client), plus small conveniences. Everything from the server is put into the
// page as text (textContent, setAttribute), never as HTML.
import { createConsumer } from "./vendor/actioncable.esm.js"

const body = document.body
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || ""
const COLORS = ["#3056d3", "#1f8a4c", "#c62f3b", "#b7791f", "#7b3fd1", "#0f8fa8", "#d1487f", "#55607a"]

document.getElementById("db-menu")?.addEventListener("change", (e) => { window.location = e.target.value })
document.getElementById("select-all")?.addEventListener("change", (e) => {
  document.querySelectorAll('input[name="ids"]').forEach((box) => { box.checked = e.target.checked })
})
document.querySelectorAll("button[data-confirm]").forEach((button) => {
  button.addEventListener("click", (e) => { if (!window.confirm(button.dataset.confirm)) e.preventDefault() })
})

function duration(seconds) {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`
  if (seconds < 60) return `${Math.round(seconds)} s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`
  return `${Math.floor(seconds / 86400)} days`
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v)
  for (const child of children) node.append(child)
  return node
}

function queueForm(action, name, label) {
  const form = el("form", { method: "post", action })
  form.append(el("input", { type: "hidden", name: "authenticity_token", value: csrf }),
              el("input", { type: "hidden", name: "queue", value: name }),
              el("button", { type: "submit", class: "small" }, label))
  return form
}

function renderQueues(queues) {
  const tbody = document.getElementById("queue-rows")
  if (!tbody) return
  const base = body.dataset.base
  const rows = queues.map((q) => {
    const enc = encodeURIComponent(q.name)
    const status = el("span", { class: q.paused ? "tag paused" : "tag ok" }, q.paused ? "paused" : "running")
    const actions = el("td", { class: "actions" },
      queueForm(`${base}queues/${q.paused ? "resume" : "pause"}`, q.name, q.paused ? "Resume" : "Pause"), " ",
      el("a", { class: "button small danger", href: `${base}queues/clear?queue=${enc}` }, "Clear…"))
    return el("tr", { "data-queue": q.name },
      el("td", { class: "name" }, el("a", { href: `${base}jobs/ready?queue=${enc}` }, q.name)),
      el("td", { class: "num size" }, q.size_text),
      el("td", { class: "num latency" }, duration(q.latency)),
      el("td", { class: "status" }, status), actions)
  })
  if (!rows.length) rows.push(el("tr", { class: "empty" }, el("td", { colspan: "5" }, "No queue has ready jobs or a pause.")))
  tbody.replaceChildren(...rows)
}

function renderCounts(counts) {
  for (const [state, text] of Object.entries(counts)) {
    document.querySelectorAll(`[data-count="${state}"]`).forEach((node) => {
      node.textContent = text
      if (state === "failed" && node.classList.contains("count")) node.classList.toggle("bad", text !== "0")
    })
  }
}

// A tiny line chart: one polyline per queue over the last hour.
function renderChart(box, series, minutes, unit) {
  const NS = "http://www.w3.org/2000/svg", W = 600, H = 170, L = 44, B = 18, T = 8
  const names = Object.keys(series)
  let max = 0
  for (const name of names) for (const v of series[name]) if (v != null && v > max) max = v
  max = max > 0 ? max * 1.1 : 1
  const svg = document.createElementNS(NS, "svg")
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`)
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet")
  const line = (x1, y1, x2, y2) => { const l = document.createElementNS(NS, "line"); Object.entries({ x1, y1, x2, y2, class: "axis" }).forEach(([k, v]) => l.setAttribute(k, v)); return l }
  const text = (x, y, s, anchor = "start") => { const t = document.createElementNS(NS, "text"); t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("text-anchor", anchor); t.textContent = s; return t }
  svg.append(line(L, T, L, H - B), line(L, H - B, W, H - B), line(L, T, W, T))
  svg.append(text(L - 4, T + 8, unit(max), "end"), text(L - 4, H - B, "0", "end"),
             text(L, H - 4, "60 min ago"), text(W, H - 4, "now", "end"))
  const n = minutes.length
  names.forEach((name, i) => {
    const points = []
    series[name].forEach((v, j) => {
      if (v == null) return
      points.push(`${(L + (j / (n - 1)) * (W - L)).toFixed(1)},${(H - B - (v / max) * (H - B - T)).toFixed(1)}`)
    })
    if (points.length) {  // the newest value as a dot: a series of one minute has no line to draw
      const [cx, cy] = points[points.length - 1].split(",")
      const dot = document.createElementNS(NS, "circle")
      Object.entries({ cx, cy, r: "3", fill: COLORS[i % COLORS.length] }).forEach(([k, v]) => dot.setAttribute(k, v))
      svg.append(dot)
    }
    const poly = document.createElementNS(NS, "polyline")
    poly.setAttribute("points", points.join(" "))
    poly.setAttribute("fill", "none")
    poly.setAttribute("stroke", COLORS[i % COLORS.length])
    poly.setAttribute("stroke-width", "2")
    poly.setAttribute("vector-effect", "non-scaling-stroke")
    svg.append(poly)
  })
  const legend = el("div", { class: "legend" })
  names.forEach((name, i) => legend.append(el("span", {}, el("i", { style: `background:${COLORS[i % COLORS.length]}` }), name)))
  if (!names.length) legend.append("No jobs in the last hour.")
  box.replaceChildren(svg, legend)
}

function renderCharts(chart) {
  const t = document.getElementById("chart-throughput"), l = document.getElementById("chart-latency")
  if (t) renderChart(t, chart.throughput, chart.minutes, (v) => `${v >= 10 ? v.toFixed(0) : v.toPrecision(2)}/s`)
  if (l) renderChart(l, chart.latency, chart.minutes, (v) => duration(v))
}

function apply(snapshot) {
  renderCounts(snapshot.counts_text)
  renderQueues(snapshot.queues)
  if (snapshot.chart) renderCharts(snapshot.chart)
  body.dataset.updates = String(Number(body.dataset.updates || 0) + 1)
}

if (body.dataset.db) {
  const live = document.getElementById("live")
  const liveUrl = body.dataset.liveUrl
  body.dataset.base = liveUrl.slice(0, liveUrl.length - "live.json".length)
  if (document.getElementById("chart-throughput")) {
    fetch(liveUrl, { credentials: "same-origin" }).then((r) => r.json()).then((s) => renderCharts(s.chart)).catch(() => {})
  }
  const consumer = createConsumer(body.dataset.cableUrl)
  consumer.subscriptions.create({ channel: "SolidstackDashboardChannel", db: body.dataset.db }, {
    connected() { live.dataset.cable = "connected" },
    disconnected() { live.dataset.cable = "disconnected" },
    rejected() { live.dataset.cable = "rejected" },
    received(snapshot) { apply(snapshot) },
  })
}
