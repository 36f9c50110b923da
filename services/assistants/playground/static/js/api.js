// The service's own REST API and its SSE streams, called with the key like any client.

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || null;
    this.param = error.param || null;
  }
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, body);
}

export class Api {
  constructor(key) {
    this.key = key;
    this.blobs = new Map();
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.key}`, ...extra };
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers() };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`/v1${path}`, init);
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }

  del(path) {
    return this.request("DELETE", path);
  }

  // Every page of a list, following OpenAI's cursor (after=<last_id>) until has_more is false.
  async list(path, params = {}) {
    const items = [];
    let after = null;
    for (;;) {
      const query = new URLSearchParams({ limit: "100", ...params });
      if (after) query.set("after", after);
      const sep = path.includes("?") ? "&" : "?";
      const page = await this.get(`${path}${sep}${query}`);
      items.push(...page.data);
      if (!page.has_more || !page.last_id) return items;
      after = page.last_id;
    }
  }

  // POST with stream: true; yields {event, data} for every SSE frame until the stream ends.
  async *stream(path, body, signal) {
    const response = await fetch(`/v1${path}`, {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ ...body, stream: true }),
      signal,
    });
    if (!response.ok) throw await failure(response);
    yield* parseSSE(response.body);
  }

  // A file's content as an object URL (an <img> or a link cannot send the key itself).
  async fileUrl(fileId) {
    if (!this.blobs.has(fileId)) {
      const load = fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, {
        headers: this.headers(),
      }).then(async (response) => {
        if (!response.ok) throw await failure(response);
        return URL.createObjectURL(await response.blob());
      });
      this.blobs.set(fileId, load);
      load.catch(() => this.blobs.delete(fileId));
    }
    return this.blobs.get(fileId);
  }

  forget() {
    for (const url of this.blobs.values()) url.then((u) => URL.revokeObjectURL(u), () => {});
    this.blobs.clear();
  }
}

// Server-sent events from a fetch body: frames split by a blank line, `event:` and `data:`.
export async function* parseSSE(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseFrame(frame);
        if (parsed) yield parsed;
      }
    }
  } finally {
    // A consumer that stops early (a new thread chosen) closes the connection too.
    await reader.cancel().catch(() => {});
  }
}

function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  if (text === "[DONE]") return { event: "done", data: null };
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}
