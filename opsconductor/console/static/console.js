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
      case "words":
        return value.split(",").map((word) => word.trim()).filter(Boolean);
      case "json":
        // Left as text when it does not parse: the API then names the field.
        try {
          return JSON.parse(value);
        } catch {
          return value;
        }
      case "tags":
        return Object.fromEntries(
          value.split(",").map((pair) => pair.trim()).filter(Boolean)
            .map((pair) => [pair.split("=")[0].trim(), pair.split("=").slice(1).join("=").trim()]),
        );
      default:
        return value;
    }
  };

  // Field names with dots ("parameters.threshold") build nested objects. An empty field is left
  // out, unless it says what clearing it sends (data-cleared, on edit forms). Check boxes of one
  // name with data-type "choices" make a list; a lone check box is a boolean.
  const bodyOf = (form, submitter) => {
    const body = {};
    const put = (name, value) => {
      const parts = name.split(".");
      let node = body;
      for (const part of parts.slice(0, -1)) node = node[part] ??= {};
      node[parts[parts.length - 1]] = value;
    };
    const cleared = (element) => element.dataset.cleared !== undefined;
    const lists = new Map();
    for (const element of form.elements) {
      if (!element.name || element.type === "submit" || element.type === "file") continue;
      if (element.dataset.type === "choices") {
        if (!lists.has(element.name)) lists.set(element.name, { element, values: [] });
        if (element.checked) lists.get(element.name).values.push(element.value);
      } else if (element.type === "checkbox") {
        // data-type "negated": a box whose ticking sends false ("Really start runs" → dry_run).
        put(element.name, element.dataset.type === "negated" ? !element.checked : element.checked);
      }
      else if (element.value !== "") put(element.name, typed(element));
      else if (cleared(element)) put(element.name, JSON.parse(element.dataset.cleared));
    }
    for (const [name, { element, values }] of lists) {
      if (values.length) put(name, values);
      else if (cleared(element)) put(name, JSON.parse(element.dataset.cleared));
    }
    // A group of fields under one key (data-root: a schedule's parameters or targets) all left
    // empty on an edit form sends what clearing the whole key means.
    for (const group of form.querySelectorAll("fieldset[data-root][data-cleared]")) {
      if (body[group.dataset.root] === undefined) put(group.dataset.root, JSON.parse(group.dataset.cleared));
    }
    if (submitter?.name) put(submitter.name, submitter.value);
    return body;
  };

  // The slot for a problem's path, in this form if it has one: "targets.names.0" falls back
  // to "targets.names", "tags.x" to "tags".
  const slotFor = (form, path) => {
    const parts = path.split(".");
    for (let length = parts.length; length > 0; length -= 1) {
      const selector = `.field-error[data-for="${CSS.escape(parts.slice(0, length).join("."))}"]`;
      const slot = form.querySelector(selector) || document.querySelector(selector);
      if (slot) return slot;
    }
    return null;
  };

  const clearProblems = (form) => {
    for (const slot of document.querySelectorAll(".field-error[data-for]")) slot.textContent = "";
    for (const control of form.querySelectorAll('[aria-invalid="true"]')) control.removeAttribute("aria-invalid");
    form.querySelector(".form-error")?.replaceChildren();
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
      const slot = slotFor(form, path);
      if (!slot) {
        general.textContent += ` — ${path}: ${item.message}`;
        continue;
      }
      slot.textContent = slot.textContent ? `${slot.textContent}; ${item.message}` : item.message;
      const control = slot.id && form.querySelector(`[aria-describedby~="${CSS.escape(slot.id)}"]`);
      if (control) control.setAttribute("aria-invalid", "true");
    }
  };

  // A form with data-show puts the answer's fields into the element of that id
  // ([data-answer="field"], or "." for the whole answer, e.g. a list; a boolean shows the element's data-yes or data-no, a list of plain
  // values is joined, any other object shown as JSON; a slot with data-link makes each value a
  // link to that path, "{}" standing for the value; a slot with data-prefix shows the value
  // after it, e.g. a link) and stays.
  const shownText = (value) => {
    if (value === null || value === undefined || (Array.isArray(value) && !value.length)) return "—";
    if (Array.isArray(value) && value.every((item) => typeof item !== "object")) return value.join(", ");
    return typeof value === "object" ? JSON.stringify(value, null, 2) : String(value);
  };
  const showAnswer = (form, answer) => {
    const shown = document.getElementById(form.dataset.show);
    for (const slot of shown.querySelectorAll("[data-answer]")) {
      const value = slot.dataset.answer === "." ? answer : answer[slot.dataset.answer];
      if (typeof value === "boolean") {
        slot.textContent = value ? slot.dataset.yes : slot.dataset.no;
        slot.className = value ? "ok" : "error";
      } else if (slot.dataset.link && Array.isArray(value) && value.length) {
        slot.replaceChildren(...value.map((item) => {
          const link = document.createElement("a");
          link.href = slot.dataset.link.replace("{}", encodeURIComponent(item));
          link.textContent = item;
          return link;
        }));
      } else if (value != null && slot.dataset.prefix) {
        slot.textContent = slot.dataset.prefix + encodeURIComponent(value);
      } else if (Array.isArray(value) && !value.length) {
        slot.textContent = "none";
      } else if (Array.isArray(value) && value.every((entry) => entry?.name || entry?.address)) {
        // A list of results: each by its name or address (and version), with what is said
        // about it; a library whose version was there already says so.
        const already = (entry) => (entry.installed === false ? "installed already" : "");
        const said = (entry) => [
          [entry.name ?? entry.address, entry.version].filter(Boolean).join(" "),
          entry.target ?? entry.reason ?? already(entry),
        ].filter(Boolean).join(" — ");
        slot.textContent = value.map(said).join(", ");
      } else slot.textContent = shownText(value);
    }
    shown.hidden = false;
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
    clearProblems(form);
    // An earlier answer shown beside the form is not this one's (nor true of a refusal).
    if (form.dataset.show) document.getElementById(form.dataset.show).hidden = true;
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
      if (form.dataset.show) return showAnswer(form, answer.data);
      const next = form.dataset.next;
      if (next) window.location.assign(next.replace("{id}", answer.data.id || ""));
      else window.location.reload();
    } finally {
      buttons.forEach((button) => (button.disabled = false));
    }
  });

  // A button with data-copy copies the value of the element of that id (a hook's URL).
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    source.select();
    await navigator.clipboard?.writeText(source.value).catch(() => {});
    button.textContent = "Copied";
  });

  // A key file chosen beside a textarea is read here, in the browser, into that textarea.
  document.addEventListener("change", async (event) => {
    const chooser = event.target.closest("input[type=file][data-fills]");
    const file = chooser?.files?.[0];
    if (file) document.getElementById(chooser.dataset.fills).value = await file.text();
  });

  // A fieldset with data-preview asks that API path (a GET, so nothing is audited) what its
  // fields (under data-preview-root, if given) select as they change, and says so in its
  // [data-preview-answer] output.
  const previews = new WeakMap();
  const preview = async (fieldset) => {
    const output = fieldset.querySelector("[data-preview-answer]");
    const root = fieldset.dataset.previewRoot;
    const selector = (root ? bodyOf(fieldset)[root] : bodyOf(fieldset)) || {};
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(selector)) {
      if (Array.isArray(value)) value.forEach((item) => query.append(key, item));
      else if (typeof value === "object") for (const [tag, wanted] of Object.entries(value)) query.append(key, `${tag}=${wanted}`);
      else query.append(key, value);
    }
    if ([...query.keys()].length === 0) {
      output.textContent = output.dataset.empty;
      return;
    }
    const answer = await call("GET", `${fieldset.dataset.preview}?${query}`);
    if (!answer.ok) {
      const problems = (answer.data.errors || []).map((item) => item.message);
      output.textContent = problems.length ? problems.join("; ") : answer.data.detail;
      return;
    }
    const { count, names } = answer.data;
    const more = count > names.length ? ", …" : "";
    output.textContent = `${count} target${count === 1 ? "" : "s"} match${count === 1 ? "es" : ""}${count ? `: ${names.join(", ")}${more}` : ""}`;
  };
  document.addEventListener("input", (event) => {
    const fieldset = event.target.closest("fieldset[data-preview]");
    if (!fieldset) return;
    clearTimeout(previews.get(fieldset));
    previews.set(fieldset, setTimeout(() => preview(fieldset), 250));
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
  // A link's fragment (#token=…) fills the empty form fields of those names: a reset link
  // carries its token there, since browsers never send the fragment to any server.
  const fillFromFragment = () => {
    for (const [name, value] of new URLSearchParams(window.location.hash.slice(1))) {
      for (const field of document.querySelectorAll(`form[data-api] [name="${CSS.escape(name)}"]`)) {
        if (field.value === "") field.value = value;
      }
    }
  };

  const ready = () => {
    follow();
    fillFromFragment();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
