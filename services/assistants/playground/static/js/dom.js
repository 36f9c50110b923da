// Small DOM helpers: build elements without innerHTML, so no text is ever parsed as markup.

export const $ = (id) => document.getElementById(id);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function options(select, items, selected, placeholder) {
  select.replaceChildren();
  if (placeholder) select.append(h("option", { value: "" }, placeholder));
  for (const { value, label } of items) {
    select.append(h("option", { value, selected: value === selected }, label));
  }
  if (selected !== undefined && selected !== null) select.value = selected;
}

export function say(el, text, isError = false) {
  el.textContent = text || "";
  el.classList.toggle("error", Boolean(isError));
}

export function time(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "—";
}

export function pretty(value) {
  if (typeof value !== "string") return JSON.stringify(value, null, 2);
  try {
    return JSON.stringify(JSON.parse(value), null, 2);
  } catch {
    return value;
  }
}
