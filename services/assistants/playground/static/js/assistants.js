// The assistants panel: pick, create, edit and delete assistants, tools included.

import { $, options, say } from "./dom.js";

const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

// Function tools as typed in the form: a JSON array of OpenAI function definitions.
export function parseFunctions(text) {
  if (!text.trim()) return [];
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`Function tools are not valid JSON: ${err.message}`);
  }
  if (!Array.isArray(value)) value = [value];
  return value.map((item, i) => {
    const fn = item && item.type === "function" ? item.function : item;
    if (!fn || typeof fn !== "object" || Array.isArray(fn)) {
      throw new Error(`Function ${i + 1} must be an object with a "name".`);
    }
    if (typeof fn.name !== "string" || !FUNCTION_NAME.test(fn.name)) {
      throw new Error(`Function ${i + 1}: "name" must be 1-64 letters, digits, _ or -.`);
    }
    if (fn.description !== undefined && typeof fn.description !== "string") {
      throw new Error(`Function ${fn.name}: "description" must be a string.`);
    }
    const params = fn.parameters;
    if (params !== undefined && (typeof params !== "object" || params === null || Array.isArray(params))) {
      throw new Error(`Function ${fn.name}: "parameters" must be a JSON Schema object.`);
    }
    return { type: "function", function: fn };
  });
}

export class AssistantsPanel {
  constructor(app) {
    this.app = app;
    this.items = [];
    this.models = [];
    this.current = null; // the assistant being edited; null while creating a new one
    $("assistant").addEventListener("change", () => this.select($("assistant").value));
    $("new-assistant").addEventListener("click", () => this.edit(null));
    $("delete-assistant").addEventListener("click", () => this.remove());
    $("assistant-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    $("assistant-functions").addEventListener("input", () => this.validateFunctions());
  }

  get api() {
    return this.app.api;
  }

  async load(items) {
    this.items = items;
    await this.loadModels();
    const keep = this.current && items.find((a) => a.id === this.current.id);
    this.render(keep ? keep.id : items.length ? items[items.length - 1].id : null);
  }

  async loadModels() {
    try {
      this.models = (await this.api.get("/models")).data.map((m) => m.id);
    } catch (err) {
      this.models = [];
      say($("assistant-status"), `The runtime's models could not be listed: ${err.message}`, true);
    }
  }

  render(selectedId) {
    const items = this.items.map((a) => ({ value: a.id, label: a.name || a.id }));
    options($("assistant"), items, selectedId || "", items.length ? null : "No assistants yet");
    this.select(selectedId);
  }

  select(id) {
    const assistant = this.items.find((a) => a.id === id) || null;
    this.edit(assistant);
    this.app.chat.assistantChanged(assistant);
  }

  edit(assistant) {
    this.current = assistant;
    const a = assistant || {};
    $("assistant-name").value = a.name || "";
    const model = a.model || this.models[0] || "";
    const names = [...new Set([...this.models, ...(a.model ? [a.model] : [])])];
    const served = new Set(this.models);
    const choices = names.map((m) => ({ value: m, label: served.has(m) ? m : `${m} (not served)` }));
    options($("assistant-model"), choices, model);
    $("assistant-instructions").value = a.instructions || "";
    $("assistant-temperature").value = a.temperature ?? "";
    const tools = a.tools || [];
    $("tool-code-interpreter").checked = tools.some((t) => t.type === "code_interpreter");
    $("tool-file-search").checked = tools.some((t) => t.type === "file_search");
    const functions = tools.filter((t) => t.type === "function").map((t) => t.function);
    $("assistant-functions").value = functions.length ? JSON.stringify(functions, null, 2) : "";
    const stores = ((a.tool_resources || {}).file_search || {}).vector_store_ids || [];
    this.app.files.fillStoreChoices($("assistant-stores"), stores);
    $("delete-assistant").disabled = !assistant;
    say($("functions-error"), "");
    say($("assistant-status"), assistant ? "" : "A new assistant: fill in and Save.");
    this.app.health.showModel(assistant ? assistant.model : null);
    if (!assistant) $("assistant-name").focus();
  }

  validateFunctions() {
    const field = $("assistant-functions");
    try {
      parseFunctions(field.value);
      field.setCustomValidity("");
      field.removeAttribute("aria-invalid");
      say($("functions-error"), "");
      return true;
    } catch (err) {
      field.setCustomValidity(err.message);
      field.setAttribute("aria-invalid", "true");
      say($("functions-error"), err.message, true);
      return false;
    }
  }

  body() {
    const tools = [];
    if ($("tool-code-interpreter").checked) tools.push({ type: "code_interpreter" });
    if ($("tool-file-search").checked) tools.push({ type: "file_search" });
    tools.push(...parseFunctions($("assistant-functions").value));
    const temperature = $("assistant-temperature").value;
    const stores = [...$("assistant-stores").selectedOptions].map((o) => o.value);
    const body = {
      name: $("assistant-name").value.trim() || null,
      model: $("assistant-model").value,
      instructions: $("assistant-instructions").value || null,
      temperature: temperature === "" ? null : Number(temperature),
      tools,
    };
    if ($("tool-file-search").checked || stores.length) {
      body.tool_resources = { file_search: { vector_store_ids: stores } };
    }
    return body;
  }

  async save() {
    const status = $("assistant-status");
    if (!this.validateFunctions()) return $("assistant-functions").focus();
    if (!$("assistant-model").value) return say(status, "Choose a model.", true);
    const body = this.body();
    say(status, "Saving…");
    try {
      const saved = this.current
        ? await this.api.post(`/assistants/${this.current.id}`, body)
        : await this.api.post("/assistants", body);
      const others = this.items.filter((a) => a.id !== saved.id);
      this.items = this.current ? this.items.map((a) => (a.id === saved.id ? saved : a)) : [...others, saved];
      this.render(saved.id);
      say(status, `Saved ${saved.name || saved.id}.`);
    } catch (err) {
      say(status, `Not saved: ${err.message}`, true);
    }
  }

  async remove() {
    const assistant = this.current;
    if (!assistant) return;
    if (!window.confirm(`Delete the assistant ${assistant.name || assistant.id}?`)) return;
    try {
      await this.api.del(`/assistants/${assistant.id}`);
      this.items = this.items.filter((a) => a.id !== assistant.id);
      this.render(this.items.length ? this.items[this.items.length - 1].id : null);
      say($("assistant-status"), `Deleted ${assistant.name || assistant.id}.`);
    } catch (err) {
      say($("assistant-status"), `Not deleted: ${err.message}`, true);
    }
  }
}
