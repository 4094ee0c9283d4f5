// The classroom dashboard: asks the server for its state about once a second, draws it,
// and acts through the same API as everyone else. Plain JavaScript, no library, nothing
// from the network. Text from the server (task ids, types, errors) is only ever set as
// text, never as HTML.
"use strict";

const POLL_MS = 1000;
const STATUSES = ["scheduled", "pending", "processing", "completed", "failed"];
const TOKEN_KEY = "queue_system.token"; // sessionStorage: kept for this tab only

let token = sessionStorage.getItem(TOKEN_KEY);

class Unauthorized extends Error {}

// One call to the API: JSON in and out, with the token if there is one.
async function api(method, path, body) {
  const headers = {};
  if (token) headers["Authorization"] = `Bearer ${token}`;
  // A browser's POST must declare JSON, even with nothing to say: the server's
  // cross-site guard refuses any other body from a web page, its own included.
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    body = body === undefined ? {} : body;
  }
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  // 401: no token, or a wrong one. 403 naming a token: this one may not do that (replay
  // needs the worker token when the server has one). Either way: ask for another.
  if (response.status === 401) throw new Unauthorized(await errorOf(response));
  if (response.status === 403) {
    const message = await errorOf(response);
    throw message.includes("token") ? new Unauthorized(message) : new Error(message);
  }
  if (!response.ok) throw new Error(await errorOf(response));
  return response.status === 204 ? null : response.json();
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error || JSON.stringify(body)}`;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

// -- the token --------------------------------------------------------------------------

function askForToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.getElementById("token").focus();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const given = document.getElementById("token").value.trim();
  if (!/^[\x21-\x7e]+$/.test(given)) { // what an HTTP header can carry, as the server says
    document.getElementById("message").textContent =
      "A token is visible ASCII characters without spaces.";
    return;
  }
  token = given;
  sessionStorage.setItem(TOKEN_KEY, token);
  event.target.hidden = true;
  poll();
});

// -- reading the state --------------------------------------------------------------------

let timer = null;

async function poll() {
  clearTimeout(timer);
  const connection = document.getElementById("connection");
  try {
    render(await api("GET", "/dashboard/state"));
    connection.textContent = "live";
    connection.className = "pill ok";
  } catch (error) {
    if (error instanceof Unauthorized) {
      connection.textContent = "needs a token";
      connection.className = "pill down";
      askForToken();
      return; // asked again once a token is given
    }
    // The server is restarting, or gone: keep asking, say so.
    connection.textContent = "server unreachable, retrying…";
    connection.className = "pill down";
  }
  timer = setTimeout(poll, POLL_MS);
}

function render(state) {
  for (const status of STATUSES) {
    document.getElementById(`count-${status}`).textContent = state.counts[status];
  }
  // The last minutes: the whole window once the server has that much history, and at
  // least a minute before, so that a burst on a fresh server is a shape, not a line.
  const known = state.history.length ? state.now - state.history[0].t : 0;
  const since = state.now - Math.min(state.window, Math.max(60, known));
  drawChart(document.getElementById("chart-live"), state.history, since, state.now,
            ["scheduled", "pending", "processing", "failed"]);
  drawChart(document.getElementById("chart-done"), state.history, since, state.now,
            ["completed"]);
  document.getElementById("throughput").textContent =
    state.throughput === null ? "–" : state.throughput.toFixed(2);
  document.getElementById("mean-wait").textContent =
    state.mean_wait === null ? "–" : state.mean_wait.toFixed(2);
  renderWorkers(state);
  renderDeadLetter(state);
}

// -- the charts: one polyline per status, in SVG ------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const H = 260, LEFT = 70, BOTTOM = 34, TOP = 12, RIGHT = 12; // the width is each chart's

function svgElement(name, attributes, text) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, value);
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawChart(svg, history, since, now, statuses) {
  const W = svg.viewBox.baseVal.width;
  let top = 1;
  for (const point of history) for (const s of statuses) top = Math.max(top, point[s]);
  top = niceCeiling(top);
  const x = (t) => LEFT + (W - LEFT - RIGHT) * (t - since) / (now - since);
  const y = (v) => H - BOTTOM - (H - BOTTOM - TOP) * v / top;
  const parts = [];
  for (const v of [0, top / 2, top]) {
    parts.push(svgElement("line", {class: "axis", x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v)}));
    parts.push(svgElement("text", {x: LEFT - 8, y: y(v) + 7, "text-anchor": "end"}, format(v)));
  }
  const span = now - since;
  const step = [10, 15, 30, 60, 120, 300].find((s) => span / s <= 6) || 600;
  for (let ago = 0; ago <= span + 0.001; ago += step) {
    const label = ago === 0 ? "now" : ago < 60 ? `-${ago} s` : `-${ago / 60} min`;
    parts.push(svgElement("text", {x: x(now - ago), y: H - 8,
                                   "text-anchor": ago === 0 ? "end" : "middle"}, label));
  }
  for (const status of statuses) {
    const points = history.map((p) => `${x(p.t).toFixed(1)},${y(p[status]).toFixed(1)}`);
    parts.push(svgElement("polyline", {class: status, points: points.join(" ")}));
  }
  svg.replaceChildren(...parts);
}

function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function format(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

// -- the tables ---------------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function ago(seconds) {
  if (seconds < 1) return "now";
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  return `${Math.round(seconds / 60)} min ago`;
}

function renderWorkers(state) {
  const rows = state.workers.map((worker) => {
    const tr = document.createElement("tr");
    tr.dataset.worker = worker.id;
    const held = worker.tasks.length === 0 ? (worker.waiting ? "waiting for work" : "idle")
      : worker.tasks.length === 1 ? `${worker.tasks[0].id} (${worker.tasks[0].type})`
      : `${worker.tasks[0].id} (${worker.tasks[0].type}) and ${worker.tasks.length - 1} more`;
    tr.append(cell(worker.id), cell(held),
              cell(worker.since === null ? "" : ago(state.now - worker.since)),
              cell(worker.lease_left === null ? "" : `${worker.lease_left.toFixed(1)} s`),
              cell(ago(state.now - worker.last_heard)));
    return tr;
  });
  document.querySelector("#workers tbody").replaceChildren(...rows);
  document.getElementById("workers-empty").hidden = rows.length > 0;
  document.getElementById("workers-total").textContent =
    state.workers_count > rows.length ? `(${rows.length} shown of ${state.workers_count})` : "";
}

function renderDeadLetter(state) {
  const rows = state.dead_letter.map((task) => {
    const tr = document.createElement("tr");
    tr.dataset.task = task.id;
    const button = document.createElement("button");
    button.className = "replay";
    button.type = "button";
    button.textContent = "Replay";
    button.addEventListener("click", () => act(
      () => api("POST", `/dead-letter/${encodeURIComponent(task.id)}/replay`),
      `${task.id} sent back to the queue`));
    const action = document.createElement("td");
    action.append(button);
    tr.append(cell(task.id), cell(task.type), cell(String(task.attempts)),
              cell(task.error || "", "error"), action);
    return tr;
  });
  document.querySelector("#dead-letter tbody").replaceChildren(...rows);
  document.getElementById("dead-empty").hidden = rows.length > 0;
  const shown = state.dead_letter.length, total = state.dead_letter_count;
  document.getElementById("dead-total").textContent =
    total > shown ? `(${shown} shown of ${total})` : "";
}

// -- the demo's controls --------------------------------------------------------------------

async function act(request, success) {
  const message = document.getElementById("message");
  try {
    await request();
    message.textContent = success;
    message.className = "";
    poll();
  } catch (error) {
    if (error instanceof Unauthorized) askForToken();
    message.textContent = error.message + (error instanceof Unauthorized
      ? " (enter a token that may do this: replay needs the worker token)" : "");
    message.className = "error";
  }
}

document.getElementById("burst-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const count = Number(document.getElementById("burst-count").value);
  const type = document.getElementById("burst-type").value;
  const priority = document.getElementById("burst-priority").value;
  // The lesson's `for i in {1..10}` loop, as one batch: all stored, or none.
  const tasks = Array.from({length: count}, (_, i) => ({type, priority, payload: {n: i + 1}}));
  act(() => api("POST", "/tasks/batch", {tasks}), `${count} ${type} tasks submitted (${priority})`);
});

document.getElementById("delayed-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const type = document.getElementById("delayed-type").value;
  const delay = Number(document.getElementById("delayed-seconds").value);
  act(() => api("POST", "/tasks", {type, delay}), `a ${type} task scheduled in ${delay} s`);
});

poll();
