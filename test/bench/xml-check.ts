/**
 * A strict little XML well-formedness check for the generated SVG (no XML parser is a project
 * dependency): one root element, every tag closed in order, attributes quoted and unique, no raw
 * '<' or bare '&' in text or attribute values. Returns the elements seen (name + attributes).
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  text: string;
}

const NAME = /^[A-Za-z_][\w.:-]*$/;
const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;

function checkText(s: string, where: string): void {
  if (s.includes('<')) throw new Error(`raw '<' in ${where}`);
  if (s.replace(ENTITY, '').includes('&')) throw new Error(`bare '&' in ${where}`);
}

export function parseXml(src: string): XmlElement[] {
  const elements: XmlElement[] = [];
  const stack: XmlElement[] = [];
  let roots = 0;
  let i = 0;
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const text = src.slice(i, lt === -1 ? src.length : lt);
    checkText(text, 'text');
    if (stack.length) stack[stack.length - 1].text += text;
    else if (text.trim()) throw new Error('text outside the root element');
    if (lt === -1) break;
    const gt = src.indexOf('>', lt);
    if (gt === -1) throw new Error('unterminated tag');
    const tag = src.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('?')) continue; // XML declaration
    if (tag.startsWith('/')) {
      const open = stack.pop();
      if (!open || open.name !== tag.slice(1).trim())
        throw new Error(`</${tag.slice(1)}> closes ${open?.name ?? 'nothing'}`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^(\S+)([\s\S]*)$/.exec(body);
    if (!m || !NAME.test(m[1])) throw new Error(`bad tag <${tag}>`);
    const attrs: Record<string, string> = {};
    let rest = m[2];
    const attr = /^\s+([A-Za-z_][\w.:-]*)="([^"]*)"/;
    for (let a = attr.exec(rest); a; a = attr.exec(rest)) {
      if (a[1] in attrs) throw new Error(`duplicate attribute ${a[1]} on <${m[1]}>`);
      checkText(a[2], `attribute ${a[1]}`);
      attrs[a[1]] = a[2];
      rest = rest.slice(a[0].length);
    }
    if (rest.trim()) throw new Error(`unparseable attributes on <${m[1]}>: ${rest}`);
    const el = { name: m[1], attrs, text: '' };
    if (!stack.length && roots++ > 0) throw new Error('more than one root element');
    elements.push(el);
    if (!selfClosing) stack.push(el);
  }
  if (stack.length) throw new Error(`unclosed <${stack[stack.length - 1].name}>`);
  if (roots !== 1) throw new Error('no root element');
  return elements;
}
