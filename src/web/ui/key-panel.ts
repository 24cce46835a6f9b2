/**
 * API key entry (kept in localStorage) and who it belongs to; also announces plainly when the
 * served model is a random-weight demo, whose images are noise and whose text is gibberish.
 */
import type { ApiError } from '../lib/api-error.ts';
import { describeError } from '../lib/api-error.ts';
import type { GraphQLClient } from '../lib/graphql-client.ts';
import { type Model, VIEWER_QUERY, type Viewer } from '../lib/operations.ts';
import type { Session } from '../lib/session.ts';
import { field, fill, h } from './dom.ts';

export type KeyPanel = { element: HTMLElement; demoBanner: HTMLElement; check(): Promise<void> };

export function createKeyPanel(
  client: GraphQLClient,
  session: Session,
  onModels: (m: Model | undefined) => void,
  onKeyChange: () => void = () => {},
): KeyPanel {
  const input = h('input', {
    name: 'apiKey',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    value: session.apiKey(),
  });
  const status = h('p', { class: 'key-status', role: 'status' });
  const demoBanner = h('p', { class: 'demo-banner', role: 'note', hidden: true });
  const forget = h(
    'button',
    {
      type: 'button',
      class: 'secondary',
      onclick: () => {
        input.value = '';
        session.setApiKey('');
        client.reset();
        onKeyChange();
        void check();
      },
    },
    'Forget key',
  );
  const form = h(
    'form',
    { class: 'key-form', 'aria-label': 'API key' },
    field('api-key', 'API key', input, 'Stored only in this browser. Create one with `harmon keys create`.'),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save key'), forget),
    status,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    session.setApiKey(input.value.trim());
    client.reset();
    onKeyChange();
    void check();
  });

  const check = async () => {
    status.classList.remove('error');
    if (!session.apiKey()) {
      status.textContent = 'Enter an API key to start.';
      return;
    }
    try {
      const { viewer, models } = await client.request<{ viewer: Viewer; models: Model[] }>(VIEWER_QUERY);
      status.textContent = `Signed in as ${viewer.tenant.name}: ${viewer.usage.remainingImages} of ${viewer.limits.monthlyImageQuota} images left this month.`;
      const model = models.find((m) => m.default) ?? models[0];
      onModels(model);
      const demo = models.filter((m) => m.demo);
      demoBanner.hidden = demo.length === 0;
      fill(
        demoBanner,
        h('strong', {}, 'Demo model: '),
        `${demo.map((m) => m.id).join(', ')} ${demo.length === 1 ? 'has' : 'have'} random weights. Generated images are noise and descriptions are gibberish; the platform around it is real.`,
      );
    } catch (e) {
      const err = e as ApiError;
      status.classList.add('error');
      status.textContent = `${describeError(err).title} ${err.message} (${err.code})`;
    }
  };

  return { element: h('section', { class: 'card key-panel' }, form), demoBanner, check };
}
