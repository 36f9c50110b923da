// The run inspector: one run's steps in order, tool calls with arguments and outputs,
// file_search results with scores, code and logs, usage, timings and errors in plain words.

import { $, h, options, pretty, time } from "./dom.js";
import { fileImage, fileLink } from "./render.js";

const INCLUDE = "include[]=step_details.tool_calls[*].file_search.results[*].content";

const ERROR_WORDS = {
  server_error: "The service or the model failed",
  rate_limit_exceeded: "Too many requests reached the model",
  invalid_prompt: "The prompt was refused",
};

export function plainError(error) {
  if (!error) return null;
  const lead = ERROR_WORDS[error.code] || `Error (${error.code || "unknown"})`;
  return `${lead}: ${error.message}`;
}

// Timestamps are whole seconds, so a quick step shows as "under 1 s".
function seconds(from, to) {
  if (!from || !to) return "—";
  const span = Math.max(0, to - from);
  return span ? `${span} s` : "under 1 s";
}

function usageLine(usage) {
  if (!usage) return "usage: —";
  return `usage: ${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion = ${usage.total_tokens} tokens`;
}

export class Inspector {
  constructor(app) {
    this.app = app;
    this.threadId = null;
    this.runs = [];
    this.runId = null;
    this.pending = null; // a refresh already queued while streaming
    $("run").addEventListener("change", () => this.refresh($("run").value || null));
    $("refresh-run").addEventListener("click", () => this.refresh(this.runId));
  }

  get api() {
    return this.app.api;
  }

  showThread(threadId, runs) {
    this.threadId = threadId;
    this.runs = runs;
    this.renderRuns(runs.length ? runs[0].id : null);
    if (runs.length) this.refresh(runs[0].id);
    else $("run-steps").replaceChildren(h("p", { class: "note" }, "No run yet."));
  }

  renderRuns(selected) {
    const items = this.runs.map((r) => ({ value: r.id, label: `${time(r.created_at)} · ${r.status} · ${r.id}` }));
    options($("run"), items, selected || "", items.length ? null : "No runs");
  }

  // A run event from a stream: the newest run becomes the one shown.
  runEvent(run) {
    const known = this.runs.findIndex((r) => r.id === run.id);
    if (known >= 0) this.runs[known] = run;
    else this.runs.unshift(run);
    this.runId = run.id;
    this.renderRuns(run.id);
    this.renderRunHeader(run);
  }

  stepEvent(step) {
    if (step.run_id === this.runId && step.status !== "in_progress") this.refresh(step.run_id, true);
  }

  // Load and show a run and its steps; `soon` coalesces the refreshes a stream triggers.
  refresh(runId, soon = false) {
    if (!runId || !this.threadId) return;
    this.runId = runId;
    if (soon) {
      if (!this.pending) this.pending = setTimeout(() => this.refresh(this.runId), 150);
      return;
    }
    clearTimeout(this.pending);
    this.pending = null;
    return this.load(this.threadId, runId);
  }

  async load(threadId, runId) {
    try {
      const base = `/threads/${threadId}/runs/${runId}`;
      const steps = (query) => this.api.list(`${base}/steps${query}`, { order: "asc" });
      const [run, list] = await Promise.all([
        this.api.get(base),
        // Search results' passages come only when asked for; a server without them says 400.
        steps(`?${INCLUDE}`).catch((err) => (err.status === 400 ? steps("") : Promise.reject(err))),
      ]);
      if (this.runId !== runId || this.threadId !== threadId) return;
      const i = this.runs.findIndex((r) => r.id === run.id);
      if (i >= 0) this.runs[i] = run;
      this.renderRuns(run.id);
      this.render(run, list);
    } catch (err) {
      $("run-steps").replaceChildren(h("p", { class: "error" }, `Run ${runId}: ${err.message}`));
    }
  }

  runHeader(run) {
    const timing = `queued → started ${seconds(run.created_at, run.started_at)}, ran ${seconds(
      run.started_at,
      run.completed_at || run.cancelled_at || run.failed_at,
    )}`;
    return h(
      "header",
      { class: "run-header" },
      h("p", {}, h("strong", {}, run.id), ` · ${run.status} · model ${run.model}`),
      h("p", {}, timing),
      h("p", {}, usageLine(run.usage)),
      run.last_error ? h("p", { class: "error" }, plainError(run.last_error)) : null,
      run.incomplete_details ? h("p", { class: "error" }, `Stopped early: ${run.incomplete_details.reason}`) : null,
    );
  }

  renderRunHeader(run) {
    const box = $("run-steps");
    const header = this.runHeader(run);
    const old = box.querySelector(".run-header");
    if (old && box.dataset.runId === run.id) old.replaceWith(header);
    else {
      box.dataset.runId = run.id;
      box.replaceChildren(header);
    }
  }

  render(run, steps) {
    const box = $("run-steps");
    box.dataset.runId = run.id;
    const list = h("ol", { class: "step-list", "aria-label": `Steps of ${run.id}` });
    for (const step of steps) list.append(this.step(step));
    box.replaceChildren(this.runHeader(run), steps.length ? list : h("p", { class: "note" }, "No steps yet."));
  }

  step(step) {
    const details = step.step_details || {};
    const body = [];
    if (details.type === "message_creation") {
      body.push(h("p", {}, `Wrote message ${details.message_creation.message_id}`));
    } else if (details.type === "tool_calls") {
      for (const call of details.tool_calls || []) body.push(this.toolCall(call));
    }
    return h(
      "li",
      { class: `step ${step.status}`, "data-step-id": step.id },
      h("h3", {}, `${details.type === "tool_calls" ? "Tool calls" : "Message"} · ${step.status}`),
      h("p", { class: "meta" }, `${step.id} · ${time(step.created_at)} · took ${seconds(step.created_at, step.completed_at || step.failed_at || step.cancelled_at)} · ${usageLine(step.usage)}`),
      step.last_error ? h("p", { class: "error" }, plainError(step.last_error)) : null,
      ...body,
    );
  }

  toolCall(call) {
    if (call.type === "function") {
      const fn = call.function;
      return h(
        "section",
        { class: "call" },
        h("h4", {}, `function ${fn.name} (${call.id})`),
        h("p", { class: "label" }, "Arguments"),
        h("pre", { class: "code" }, pretty(fn.arguments)),
        h("p", { class: "label" }, "Output"),
        h("pre", { class: "code" }, fn.output === null || fn.output === undefined ? "(none yet)" : fn.output),
      );
    }
    if (call.type === "code_interpreter") {
      const ci = call.code_interpreter || {};
      const outputs = (ci.outputs || []).map((out) =>
        out.type === "logs"
          ? h("pre", { class: "code logs", "aria-label": "Logs" }, out.logs)
          : out.type === "image"
            ? fileImage(this.app, out.image.file_id)
            : null,
      );
      return h(
        "section",
        { class: "call" },
        h("h4", {}, `code_interpreter (${call.id})`),
        h("p", { class: "label" }, "Code"),
        h("pre", { class: "code", "aria-label": "Code" }, ci.input || ""),
        h("p", { class: "label" }, "Outputs"),
        ...(outputs.length ? outputs : [h("p", { class: "note" }, "(no output)")]),
      );
    }
    if (call.type === "file_search") {
      const results = (call.file_search && call.file_search.results) || [];
      const rows = results.map((r) =>
        h(
          "li",
          {},
          h("span", { class: "score" }, `score ${Number(r.score).toFixed(3)}`),
          " ",
          fileLink(this.app, r.file_id, r.file_name || r.file_id),
          ...(r.content || []).map((c) => h("blockquote", {}, c.text || "")),
        ),
      );
      return h(
        "section",
        { class: "call" },
        h("h4", {}, `file_search (${call.id})`),
        rows.length ? h("ol", { class: "results", "aria-label": "Search results" }, rows) : h("p", { class: "note" }, "(no results)"),
      );
    }
    return h("section", { class: "call" }, h("h4", {}, call.type), h("pre", { class: "code" }, pretty(call)));
  }
}
