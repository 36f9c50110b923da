// Files: vector stores, uploads to one (a file field or drag and drop), each file's
// ingestion status and error.

import { $, h, options, say } from "./dom.js";
import { fileLink } from "./render.js";

const POLL_MS = 500;

export class FilesPanel {
  constructor(app) {
    this.app = app;
    this.stores = [];
    this.available = true;
    $("store").addEventListener("change", () => this.showStore($("store").value || null));
    $("store-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.createStore();
    });
    $("upload").addEventListener("change", () => {
      this.upload([...$("upload").files]);
      $("upload").value = "";
    });
    const zone = $("drop-zone");
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      this.upload([...event.dataTransfer.files]);
    });
  }

  get api() {
    return this.app.api;
  }

  async load() {
    try {
      this.stores = await this.api.list("/vector_stores", { order: "asc" });
      this.available = true;
    } catch (err) {
      this.stores = [];
      this.available = false;
      this.enable(false);
      if (err.status === 404) {
        say($("files-status"), "This server has no vector stores.");
        this.fillStoreChoices($("assistant-stores"), []);
        return;
      }
      throw err;
    }
    this.enable(true);
    const current = $("store").value;
    const selected = this.stores.some((s) => s.id === current) ? current : this.stores.length ? this.stores[0].id : null;
    options($("store"), this.stores.map((s) => ({ value: s.id, label: s.name || s.id })), selected || "", this.stores.length ? null : "No vector stores");
    this.fillStoreChoices($("assistant-stores"), [...$("assistant-stores").selectedOptions].map((o) => o.value));
    await this.showStore(selected);
  }

  enable(on) {
    for (const id of ["store", "store-name", "create-store", "upload"]) $(id).disabled = !on;
    $("drop-zone").classList.toggle("disabled", !on);
  }

  // The assistant form's store choices: every store, with the assistant's selected.
  fillStoreChoices(select, selectedIds) {
    select.replaceChildren();
    const ids = new Set(selectedIds);
    for (const store of this.stores) {
      select.append(h("option", { value: store.id, selected: ids.has(store.id) }, store.name || store.id));
      ids.delete(store.id);
    }
    for (const id of ids) select.append(h("option", { value: id, selected: true }, id));
  }

  async createStore() {
    const name = $("store-name").value.trim();
    try {
      const store = await this.api.post("/vector_stores", name ? { name } : {});
      $("store-name").value = "";
      this.stores.push(store);
      options($("store"), this.stores.map((s) => ({ value: s.id, label: s.name || s.id })), store.id);
      this.fillStoreChoices($("assistant-stores"), [...$("assistant-stores").selectedOptions].map((o) => o.value));
      say($("files-status"), `Created vector store ${store.name || store.id}.`);
      await this.showStore(store.id);
    } catch (err) {
      say($("files-status"), `Vector store not created: ${err.message}`, true);
    }
  }

  async showStore(storeId) {
    this.storeId = storeId;
    const list = $("store-files");
    list.replaceChildren();
    if (!storeId) return;
    try {
      const files = await this.api.list(`/vector_stores/${storeId}/files`, { order: "asc" });
      if (this.storeId !== storeId) return;
      for (const file of files) {
        const row = this.row(file.id, file.id);
        this.app.fileNames.name(file.id).then((name) => (row.querySelector(".file-link").textContent = name));
        this.status(row, file);
        if (file.status === "in_progress") this.watch(storeId, file.id, row);
      }
    } catch (err) {
      say($("files-status"), `Files of ${storeId}: ${err.message}`, true);
    }
  }

  row(fileId, name) {
    const row = h(
      "li",
      { class: "store-file", "data-file-id": fileId || "" },
      fileId ? fileLink(this.app, fileId, name) : h("span", { class: "file-link" }, name),
      " ",
      h("span", { class: "status", role: "status" }, "uploading…"),
      h("span", { class: "error" }),
    );
    $("store-files").append(row);
    return row;
  }

  status(row, file) {
    row.dataset.status = file.status;
    row.querySelector(".status").textContent = file.status.replace("_", " ");
    const error = file.last_error ? `${file.last_error.code}: ${file.last_error.message}` : "";
    row.querySelector(".error").textContent = error ? ` — ${error}` : "";
  }

  async upload(files) {
    if (!files.length || !this.available) return;
    if (!this.storeId) return say($("files-status"), "Create or choose a vector store first.", true);
    const storeId = this.storeId;
    await Promise.all(files.map((file) => this.uploadOne(storeId, file)));
  }

  async uploadOne(storeId, file) {
    const row = this.row(null, file.name);
    try {
      const form = new FormData();
      form.append("purpose", "assistants");
      form.append("file", file, file.name);
      const uploaded = await this.api.request("POST", "/files", form);
      row.dataset.fileId = uploaded.id;
      row.firstChild.replaceWith(fileLink(this.app, uploaded.id, file.name));
      const attached = await this.api.post(`/vector_stores/${storeId}/files`, { file_id: uploaded.id });
      this.status(row, attached);
      if (attached.status === "in_progress") await this.watch(storeId, uploaded.id, row);
    } catch (err) {
      row.dataset.status = "failed";
      row.querySelector(".status").textContent = "failed";
      row.querySelector(".error").textContent = ` — ${err.message}`;
    }
  }

  async watch(storeId, fileId, row) {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (!row.isConnected || !this.app.api) return;
      const file = await this.api.get(`/vector_stores/${storeId}/files/${fileId}`);
      this.status(row, file);
      if (file.status !== "in_progress") return;
    }
  }
}
