// OpsConductor console: every change is a call to the REST API, made here with the session
// cookie and the page's CSRF token; problems come back as problem+json and are shown at the
// field they name. Also follows a run's log over server-sent events.
(() => {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  const typed = (element) => {
    const value = element.value;
    switch (element.dataset.type) {
      case "integer":
      case "number":
        return value.trim() === "" || Number.isNaN(Number(value)) ? value : Number(value);
      case "boolean":
        return value === "true";
      default:
        return value;
    }
  };

  // Field names with dots ("parameters.threshold") build nested objects; empty values are left out.
  const bodyOf = (form, submitter) => {
    const body = {};
    const put = (name, value) => {
      const parts = name.split(".");
      let node = body;
      for (const part of parts.slice(0, -1)) node = node[part] ??= {};
      node[parts[parts.length - 1]] = value;
    };
    for (const element of form.elements) {
      if (!element.name || element.type === "submit" || element.value === "") continue;
      put(element.name, typed(element));
    }
    if (submitter?.name) put(submitter.name, submitter.value);
    return body;
  };

  const showProblem = (form, problem) => {
    let general = form.querySelector(".form-error");
    if (!general) {
      general = document.createElement("p");
      general.className = "form-error";
      general.setAttribute("role", "alert");
      form.append(general);
    }
    general.textContent = problem.detail || problem.title || "The request failed";
    for (const item of problem.errors || []) {
      const path = String(item.path || "").replace(/^body\./, "");
      const slot = document.querySelector(`.field-error[data-for="${CSS.escape(path)}"]`);
      if (slot) slot.textContent = item.message;
      else general.textContent += ` — ${path}: ${item.message}`;
    }
  };

  const call = async (method, path, body) => {
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (response.status === 401) data.detail = "Your session has ended: reload the page to sign in again.";
    return { ok: response.ok, data };
  };

  // The builder's YAML becomes JSON on the server, which only parses it; the save itself is the API's.
  const yamlBody = async (selector) => {
    const form = new URLSearchParams({ document: document.querySelector(selector).value });
    const response = await fetch("/builder/parse", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf() },
      body: form,
    });
    return { ok: response.ok, data: await response.json() };
  };

  document.addEventListener("submit", async (event) => {
    const form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    for (const slot of document.querySelectorAll(".field-error[data-for]")) slot.textContent = "";
    form.querySelector(".form-error")?.replaceChildren();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((button) => (button.disabled = true));
    try {
      let body = bodyOf(form, event.submitter);
      if (form.dataset.yaml) {
        const parsed = await yamlBody(form.dataset.yaml);
        if (!parsed.ok) return showProblem(form, parsed.data);
        body = parsed.data;
      }
      const answer = await call(form.dataset.method || "POST", form.dataset.api, body);
      if (!answer.ok) return showProblem(form, answer.data);
      const next = form.dataset.next;
      if (next) window.location.assign(next.replace("{id}", answer.data.id || ""));
      else window.location.reload();
    } finally {
      buttons.forEach((button) => (button.disabled = false));
    }
  });

  // A run's log, live: each event is one line; "end" closes the stream.
  const follow = () => {
    const log = document.getElementById("log");
    if (!log?.dataset.follow) return;
    const state = document.getElementById("log-state");
    const source = new EventSource(log.dataset.follow);
    source.addEventListener("open", () => (state.textContent = "Following live…"));
    source.addEventListener("line", (event) => {
      const entry = JSON.parse(event.data);
      const line = document.createElement("span");
      line.className = `line ${entry.stream}`;
      // A retried step (or one run again after its worker shut down) prints anew: its later
      // attempts' lines say which try they are.
      const attempt = entry.attempt > 1 ? ` try ${entry.attempt}` : "";
      line.textContent = `[${entry.target || "run"}/${entry.step_id}${attempt}] ${entry.line}\n`;
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(line);
      if (atBottom) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", (event) => {
      state.textContent = `The run ended: ${JSON.parse(event.data).status}.`;
      source.close();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) state.textContent = "The log stream closed.";
    });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", follow);
  else follow();
})();
