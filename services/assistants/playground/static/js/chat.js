// Threads and the conversation: send, stream the answer from the run's SSE, cancel, and act
// as the function tools when a run requires action.

import { $, h, options, pretty, say } from "./dom.js";
import { FileNames, MessageView } from "./render.js";

const THREADS = "playground.threads"; // thread ids only (the API cannot list threads)
const ACTIVE = new Set(["queued", "in_progress", "requires_action", "cancelling"]);
const POLL_MS = 1000;

export class ChatPanel {
  constructor(app) {
    this.app = app;
    app.fileNames = new FileNames(app);
    this.assistant = null;
    this.threadId = null;
    this.run = null; // the latest run of the thread, as last seen
    this.views = new Map(); // message id -> MessageView
    this.abort = null; // stops reading the current stream
    this.poller = null;
    this.firstToken = false; // whether this send's first token is on screen yet
    $("thread").addEventListener("change", () => this.openThread($("thread").value || null));
    $("new-thread").addEventListener("click", () => this.newThread());
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    $("message").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    $("cancel").addEventListener("click", () => this.cancel());
    $("tool-outputs").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitOutputs();
    });
  }

  get api() {
    return this.app.api;
  }

  threads() {
    try {
      return JSON.parse(localStorage.getItem(THREADS) || "[]");
    } catch {
      return [];
    }
  }

  remember(list) {
    localStorage.setItem(THREADS, JSON.stringify(list.slice(0, 50)));
  }

  renderThreads(selected) {
    const items = this.threads().map((t) => ({
      value: t.id,
      label: `${new Date(t.created_at * 1000).toLocaleString()} · ${t.id}`,
    }));
    options($("thread"), items, selected || "", "No thread");
  }

  restore() {
    const latest = this.threads()[0];
    return this.openThread(latest ? latest.id : null);
  }

  assistantChanged(assistant) {
    this.assistant = assistant;
  }

  stop() {
    if (this.abort) this.abort.abort();
    this.abort = null;
    clearTimeout(this.poller);
    this.poller = null;
  }

  async newThread() {
    const thread = await this.api.post("/threads", {});
    this.remember([{ id: thread.id, created_at: thread.created_at }, ...this.threads()]);
    await this.openThread(thread.id);
    $("message").focus();
    return thread.id;
  }

  async openThread(threadId) {
    this.stop();
    this.threadId = threadId;
    this.run = null;
    this.views.clear();
    $("conversation").replaceChildren();
    this.showToolCalls(null);
    this.renderThreads(threadId);
    this.setStatus(null);
    if (!threadId) return this.app.inspector.showThread(null, []);
    try {
      const [messages, runs] = await Promise.all([
        this.api.list(`/threads/${threadId}/messages`, { order: "asc" }),
        this.api.list(`/threads/${threadId}/runs`, { order: "desc" }),
      ]);
      if (this.threadId !== threadId) return;
      for (const message of messages) this.addMessage(message);
      // A message sent while these loaded has its run's stream, which knows better.
      if (this.abort) return;
      this.run = runs[0] || null;
      this.setStatus(this.run);
      this.app.inspector.showThread(threadId, runs);
      if (this.run && this.run.status === "requires_action") this.showToolCalls(this.run);
      else if (this.run && ACTIVE.has(this.run.status)) this.poll();
    } catch (err) {
      if (err.status === 404) {
        this.remember(this.threads().filter((t) => t.id !== threadId));
        this.renderThreads(null);
        this.threadId = null;
      }
      this.setStatus(null, `Thread ${threadId}: ${err.message}`);
    }
  }

  addMessage(message) {
    let view = this.views.get(message.id);
    if (view) view.fill(message);
    else {
      view = new MessageView(this.app, message);
      this.views.set(message.id, view);
      $("conversation").append(view.el);
    }
    this.scroll();
    return view;
  }

  scroll() {
    const log = $("conversation");
    log.scrollTop = log.scrollHeight;
  }

  setStatus(run, text) {
    const active = Boolean(run && ACTIVE.has(run.status));
    $("cancel").disabled = !active;
    $("send").disabled = Boolean(this.abort) || active;
    const el = $("run-status");
    el.dataset.status = run ? run.status : "";
    if (text) return say(el, text, true);
    if (!run) return say(el, "");
    let line = `Run ${run.id}: ${run.status.replace("_", " ")}`;
    if (run.last_error) line += ` — ${run.last_error.message}`;
    if (run.incomplete_details) line += ` — stopped early (${run.incomplete_details.reason})`;
    say(el, line, run.status === "failed" || run.status === "expired");
  }

  async send() {
    const box = $("message");
    const text = box.value;
    if (!text.trim()) return;
    if (this.abort || (this.run && ACTIVE.has(this.run.status))) {
      // A thread runs one run at a time; the text stays in the box for later.
      return say($("run-status"), "A run is still active: wait for it to end, or Cancel it.", true);
    }
    if (!this.assistant) return this.setStatus(null, "Choose or create an assistant first.");
    performance.clearMarks("playground-first-token");
    performance.mark("playground-send");
    this.firstToken = false;
    box.value = "";
    try {
      const threadId = this.threadId || (await this.newThread());
      const pending = this.addMessage({
        id: `pending-${Date.now()}`,
        role: "user",
        content: [{ type: "text", text: { value: text, annotations: [] } }],
      });
      // One request: the message rides on the run, so the first token comes a round trip sooner.
      const body = {
        assistant_id: this.assistant.id,
        additional_messages: [{ role: "user", content: text }],
      };
      await this.follow(`/threads/${threadId}/runs`, body, pending);
    } catch (err) {
      box.value = text;
      this.setStatus(this.run, `Not sent: ${err.message}`);
    }
  }

  // Read one run stream to its end, updating the conversation, the status and the inspector.
  async follow(path, body, pendingUser = null) {
    const threadId = this.threadId;
    this.abort = new AbortController();
    $("send").disabled = true;
    let userSeen = !pendingUser;
    try {
      for await (const { event, data } of this.api.stream(path, body, this.abort.signal)) {
        if (this.threadId !== threadId) break;
        if (event.startsWith("thread.run.step.")) {
          this.app.inspector.stepEvent(data);
        } else if (event.startsWith("thread.run.")) {
          this.run = data;
          this.setStatus(data);
          this.app.inspector.runEvent(data);
          if (event === "thread.run.requires_action") this.showToolCalls(data);
        } else if (event === "thread.message.created" || event === "thread.message.completed") {
          if (data.role === "user" && !userSeen) {
            // The message the run added: the placeholder becomes the stored message.
            this.views.delete(pendingUser.id);
            pendingUser.el.remove();
            userSeen = true;
          }
          if (event === "thread.message.created" || data.role !== "user") this.addMessage(data);
        } else if (event === "thread.message.delta") {
          const view = this.views.get(data.id);
          if (view && view.applyDelta(data.delta)) this.tokenShown();
        } else if (event === "error") {
          this.setStatus(this.run, `Stream error: ${(data && data.message) || JSON.stringify(data)}`);
        }
      }
    } catch (err) {
      if (err.name !== "AbortError") this.setStatus(this.run, `Stream broken: ${err.message}`);
    } finally {
      this.abort = null;
      if (this.threadId === threadId) {
        this.setStatus(this.run);
        if (this.run) this.app.inspector.refresh(this.run.id);
        if (this.run && ACTIVE.has(this.run.status) && this.run.status !== "requires_action") this.poll();
      }
    }
  }

  tokenShown() {
    if (!this.firstToken) {
      this.firstToken = true;
      performance.mark("playground-first-token");
    }
    this.scroll();
  }

  // A run this page is not streaming (opened while active, or cancelled): poll until it rests.
  poll() {
    clearTimeout(this.poller);
    const threadId = this.threadId;
    this.poller = setTimeout(async () => {
      if (!this.run || this.threadId !== threadId || this.abort) return;
      try {
        const run = await this.api.get(`/threads/${threadId}/runs/${this.run.id}`);
        if (this.threadId !== threadId) return;
        const changed = run.status !== this.run.status;
        this.run = run;
        this.setStatus(run);
        if (run.status === "requires_action") this.showToolCalls(run);
        if (ACTIVE.has(run.status) && run.status !== "requires_action") return this.poll();
        if (changed) await this.openThread(threadId);
      } catch (err) {
        this.setStatus(this.run, `Run status unknown: ${err.message}`);
      }
    }, POLL_MS);
  }

  async cancel() {
    if (!this.run || !this.threadId) return;
    try {
      const run = await this.api.post(`/threads/${this.threadId}/runs/${this.run.id}/cancel`);
      this.run = run;
      this.setStatus(run);
      this.showToolCalls(null);
      if (!this.abort) this.poll();
    } catch (err) {
      this.setStatus(this.run, `Not cancelled: ${err.message}`);
    }
  }

  showToolCalls(run) {
    const form = $("tool-outputs");
    const list = $("tool-calls");
    list.replaceChildren();
    const calls = run && run.required_action ? run.required_action.submit_tool_outputs.tool_calls : [];
    form.hidden = !calls.length;
    form.dataset.runId = run ? run.id : "";
    for (const call of calls) {
      const id = `output-${call.id}`;
      list.append(
        h(
          "fieldset",
          { class: "tool-call", "data-call-id": call.id },
          h("legend", {}, `${call.function.name} (${call.id})`),
          h("p", { class: "label" }, "Arguments"),
          h("pre", { class: "code", "aria-label": `Arguments of ${call.function.name} ${call.id}` }, pretty(call.function.arguments)),
          h("label", { for: id }, `Output of ${call.function.name} (${call.id})`),
          h("textarea", { id, rows: 2, "data-call-id": call.id }),
        ),
      );
    }
    if (calls.length) list.querySelector("textarea").focus();
  }

  async submitOutputs() {
    const runId = $("tool-outputs").dataset.runId;
    const outputs = [...$("tool-calls").querySelectorAll("textarea")].map((field) => ({
      tool_call_id: field.dataset.callId,
      output: field.value,
    }));
    if (!runId || !outputs.length || this.abort) return;
    this.showToolCalls(null);
    await this.follow(`/threads/${this.threadId}/runs/${runId}/submit_tool_outputs`, { tool_outputs: outputs });
  }
}
