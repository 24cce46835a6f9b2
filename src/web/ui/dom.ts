/** A minimal element factory: attributes as strings, `on*` props as listeners, children appended. */
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | undefined | null | ((e: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') el.addEventListener(name.slice(2).toLowerCase(), value);
    else if (value === true) el.setAttribute(name, '');
    else if (value !== false && value != null) el.setAttribute(name, String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children)
    if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A labelled form field with a hint and an error slot wired through aria-describedby. */
export function field(
  id: string,
  label: string,
  control: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement,
  hint?: string,
): HTMLDivElement {
  control.id = id;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  control.setAttribute('aria-describedby', hint ? `${hintId} ${errorId}` : errorId);
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { id: hintId, class: 'hint' }, hint) : null,
    h('p', { id: errorId, class: 'field-error', hidden: true }),
  );
}

/** Shows (or clears with '') the message under a field made by `field`. */
export function setFieldError(form: HTMLFormElement, name: string, message: string): boolean {
  const control = form.elements.namedItem(name);
  if (!(control instanceof HTMLElement)) return false;
  const slot = document.getElementById(`${control.id}-error`);
  if (message) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
  if (slot) {
    slot.textContent = message;
    slot.hidden = !message;
  }
  return true;
}

export function clearFieldErrors(form: HTMLFormElement): void {
  for (const el of Array.from(form.elements))
    if (el instanceof HTMLElement && el.id && (el as HTMLInputElement).name)
      setFieldError(form, (el as HTMLInputElement).name, '');
}
