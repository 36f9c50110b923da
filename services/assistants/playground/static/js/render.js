// Messages as the conversation shows them: text with footnoted citations, images, file links.

import { h } from "./dom.js";

const MARKER_NAME = /【[^†】]*†([^】]+)】/;
const STREAMED_MARKER = /【(\d+)(?::\d+)?†[^】]*】/g;

export class FileNames {
  constructor(app) {
    this.app = app;
    this.names = new Map();
  }

  // A file's name from /v1/files/{id}; the marker's own name (or the id) if that fails.
  name(fileId, fallback) {
    if (!this.names.has(fileId)) {
      const load = this.app.api
        .get(`/files/${encodeURIComponent(fileId)}`)
        .then((file) => file.filename || fallback || fileId)
        .catch(() => fallback || fileId);
      this.names.set(fileId, load);
    }
    return this.names.get(fileId);
  }
}

// A link that fetches the file's content with the key when followed.
export function fileLink(app, fileId, label) {
  const link = h("a", { href: "#", class: "file-link", "data-file-id": fileId }, label);
  link.addEventListener("click", async (event) => {
    if (link.dataset.ready) return;
    event.preventDefault();
    try {
      link.href = await app.api.fileUrl(fileId);
      // A sandbox path (sandbox:/mnt/data/x.csv) saves as its last part.
      link.download = link.textContent.split("/").pop();
      link.dataset.ready = "true";
      link.click();
    } catch (err) {
      link.title = `Could not open: ${err.message}`;
      link.classList.add("error");
    }
  });
  return link;
}

export function fileImage(app, fileId) {
  const img = h("img", { class: "inline-image", alt: `Image ${fileId} from the run`, "data-file-id": fileId });
  app.api.fileUrl(fileId).then(
    (url) => {
      img.src = url;
    },
    (err) => {
      img.alt = `Image ${fileId} could not be loaded: ${err.message}`;
    },
  );
  return img;
}

// Text with its annotations: citations become numbered footnotes, file paths become links.
function renderText(app, text, footnotes, messageId) {
  const value = text.value || "";
  const annotations = [...(text.annotations || [])]
    .filter((a) => Number.isInteger(a.start_index) && Number.isInteger(a.end_index))
    .sort((a, b) => a.start_index - b.start_index);
  const out = h("p", { class: "text" });
  let at = 0;
  for (const annotation of annotations) {
    if (annotation.start_index < at) continue;
    out.append(value.slice(at, annotation.start_index));
    if (annotation.type === "file_citation") {
      const n = footnotes.length + 1;
      const fileId = annotation.file_citation.file_id;
      const marker = MARKER_NAME.exec(annotation.text || "");
      footnotes.push({ n, fileId, fallback: marker ? marker[1] : null });
      out.append(h("sup", {}, h("a", { href: `#fn-${messageId}-${n}`, id: `ref-${messageId}-${n}`, class: "cite" }, `[${n}]`)));
    } else if (annotation.type === "file_path") {
      out.append(fileLink(app, annotation.file_path.file_id, annotation.text || annotation.file_path.file_id));
    } else {
      out.append(value.slice(annotation.start_index, annotation.end_index));
    }
    at = annotation.end_index;
  }
  out.append(value.slice(at));
  return out;
}

function renderFootnotes(app, footnotes, messageId) {
  if (!footnotes.length) return null;
  const list = h("ol", { class: "footnotes", "aria-label": "Citations" });
  for (const { n, fileId, fallback } of footnotes) {
    const link = fileLink(app, fileId, fallback || fileId);
    app.fileNames.name(fileId, fallback).then((name) => {
      if (!link.dataset.ready) link.textContent = name;
    });
    list.append(h("li", { id: `fn-${messageId}-${n}`, value: n }, link));
  }
  return list;
}

export function renderContent(app, message) {
  const footnotes = [];
  const parts = [];
  for (const part of message.content || []) {
    if (part.type === "text") parts.push(renderText(app, part.text, footnotes, message.id));
    else if (part.type === "image_file") parts.push(fileImage(app, part.image_file.file_id));
    else if (part.type === "image_url") {
      parts.push(h("img", { class: "inline-image", alt: "Image from the message", src: part.image_url.url }));
    }
  }
  for (const attachment of message.attachments || []) {
    parts.push(h("p", { class: "attachment" }, "Attached: ", fileLink(app, attachment.file_id, attachment.file_id)));
  }
  return { parts, footnotes: renderFootnotes(app, footnotes, message.id) };
}

// One message's bubble; the body can be refilled as deltas arrive and when it completes.
export class MessageView {
  constructor(app, message) {
    this.app = app;
    this.id = message.id;
    this.body = h("div", { class: "body" });
    this.el = h(
      "article",
      { class: `msg ${message.role}`, "data-message-id": message.id, "aria-label": `${message.role} message` },
      h("h3", { class: "who" }, message.role === "user" ? "You" : "Assistant"),
      this.body,
    );
    this.parts = new Map(); // delta index -> the element it extends
    this.fill(message);
  }

  fill(message) {
    const { parts, footnotes } = renderContent(this.app, message);
    this.body.replaceChildren(...parts);
    if (footnotes) this.body.append(footnotes);
    this.parts.clear();
  }

  // A thread.message.delta: text pieces are appended as they come, images as they appear.
  // Returns whether any text reached the page.
  applyDelta(delta) {
    let text = false;
    for (const part of delta.content || []) {
      let el = this.parts.get(part.index);
      if (part.type === "text") {
        if (!el) {
          el = h("p", { class: "text streaming" });
          this.parts.set(part.index, el);
          this.body.append(el);
        }
        // Citation markers show as [n] at once; the footnotes come with the whole message.
        const piece = ((part.text && part.text.value) || "").replace(STREAMED_MARKER, "[$1]");
        if (piece) {
          el.append(piece);
          text = true;
        }
      } else if (part.type === "image_file" && !el) {
        el = fileImage(this.app, part.image_file.file_id);
        this.parts.set(part.index, el);
        this.body.append(el);
      }
    }
    return text;
  }
}
