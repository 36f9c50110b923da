// The playground's entry point: the key, then the panels, each of which owns its controls.

import { Api } from "./api.js";
import { $, say } from "./dom.js";
import { AssistantsPanel } from "./assistants.js";
import { ChatPanel } from "./chat.js";
import { FilesPanel } from "./files.js";
import { HealthPanel } from "./health.js";
import { Inspector } from "./inspector.js";

const KEY = "playground.api-key"; // sessionStorage: gone when the browser session ends

class Playground {
  constructor() {
    this.api = null;
    this.health = new HealthPanel(this);
    this.assistants = new AssistantsPanel(this);
    this.inspector = new Inspector(this);
    this.chat = new ChatPanel(this);
    this.files = new FilesPanel(this);
    $("connect-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.connect($("api-key").value.trim());
    });
    $("disconnect").addEventListener("click", () => this.disconnect());
  }

  async start() {
    this.health.start();
    $("connect").disabled = false;
    document.documentElement.dataset.ready = "true";
    performance.mark("playground-interactive");
    const saved = sessionStorage.getItem(KEY);
    if (saved) {
      $("api-key").value = saved;
      await this.connect(saved);
    }
  }

  async connect(key) {
    const status = $("connect-status");
    if (!key) return say(status, "Enter the API key.", true);
    const api = new Api(key);
    say(status, "Connecting…");
    try {
      // Any keyed read proves the key; the assistants list is needed first anyway.
      const assistants = await api.list("/assistants", { order: "asc" });
      this.api = api;
      sessionStorage.setItem(KEY, key);
      $("workspace").hidden = false;
      $("disconnect").hidden = false;
      await Promise.all([
        this.assistants.load(assistants),
        this.files.load().catch((err) => say($("files-status"), err.message, true)),
      ]);
      await this.chat.restore();
      // Said once every panel is filled, so nothing done after it is overwritten by a load.
      say(status, "Connected.");
      document.documentElement.dataset.connected = "true";
      performance.mark("playground-connected");
    } catch (err) {
      this.api = null;
      sessionStorage.removeItem(KEY);
      $("workspace").hidden = true;
      say(status, err.status === 401 ? `Refused: ${err.message}` : `Cannot connect: ${err.message}`, true);
    }
  }

  disconnect() {
    this.chat.stop();
    if (this.api) this.api.forget();
    this.api = null;
    sessionStorage.removeItem(KEY);
    $("api-key").value = "";
    $("workspace").hidden = true;
    $("disconnect").hidden = true;
    // Nothing read with the key stays in the page once it is gone.
    for (const id of ["conversation", "run-steps", "store-files", "tool-calls"]) $(id).replaceChildren();
    delete document.documentElement.dataset.connected;
    say($("connect-status"), "Disconnected.");
  }
}

const playground = new Playground();
window.playground = playground;
playground.start();
