/** The text-to-image form and the job it started (followed live, resumable after a reload). */
import { ApiError } from '../lib/api-error.ts';
import type { GraphQLClient } from '../lib/graphql-client.ts';
import { GENERATE_MUTATION, type Job, type Model } from '../lib/operations.ts';
import { field, h } from './dom.ts';
import { createErrorBox } from './error-box.ts';
import type { JobFollowing } from './job-following.ts';
import { createJobPanel } from './job-panel.ts';

const num = (name: string, attrs: Record<string, string | number>) =>
  h('input', { name, type: 'number', inputmode: 'decimal', ...attrs });

export type GenerateView = {
  element: HTMLElement;
  setModel(m: Model | undefined): void;
  follow(jobId: string | undefined): void;
};

export function createGenerateView(client: GraphQLClient, following: JobFollowing): GenerateView {
  const size = num('size', { min: 16, step: 16, placeholder: 'model default' });
  const submit = h('button', { type: 'submit' }, 'Generate');
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'generate-h' },
    h('h2', { id: 'generate-h' }, 'Generate an image'),
    field(
      'gen-prompt',
      'Prompt',
      h('textarea', { name: 'prompt', rows: 3, required: true, maxlength: 2000 }),
      'What the image should show (up to 2,000 characters).',
    ),
    h(
      'div',
      { class: 'grid' },
      field('gen-seed', 'Seed', num('seed', { step: 1, placeholder: 'random' }), 'Same seed, same image.'),
      field(
        'gen-steps',
        'Steps',
        num('steps', { min: 1, max: 256, step: 1, placeholder: 'default' }),
        'MAR steps.',
      ),
      field(
        'gen-cfg',
        'Guidance (cfg)',
        num('cfg', { min: 1, max: 20, step: 0.1, placeholder: 'default' }),
        '1 turns guidance off.',
      ),
      field('gen-size', 'Size (px)', size, 'A multiple of 16.'),
      field('gen-count', 'Images', num('count', { min: 1, max: 4, step: 1, placeholder: '1' }), '1 to 4.'),
    ),
    submit,
  );
  const errors = createErrorBox(form, submit);
  form.append(errors.element);
  const panel = createJobPanel('gen', client, (e) =>
    errors.show(e instanceof ApiError ? e : new ApiError('INTERNAL', String(e))),
  );
  const job = following.slot('generate', panel, (e) => errors.show(e));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errors.clear();
    const data = new FormData(form);
    const prompt = String(data.get('prompt') ?? '').trim();
    const input: Record<string, unknown> = { prompt };
    for (const name of ['seed', 'steps', 'size', 'count'] as const) {
      const v = String(data.get(name) ?? '').trim();
      if (v) input[name] = Number.parseInt(v, 10);
    }
    const cfg = String(data.get('cfg') ?? '').trim();
    if (cfg) input.cfg = Number.parseFloat(cfg);
    if (!prompt)
      return errors.show(
        new ApiError('BAD_USER_INPUT', 'Enter a prompt.', {
          fields: [{ path: 'prompt', message: 'A prompt is required.' }],
        }),
      );
    submit.disabled = true;
    try {
      const { generate } = await client.request<{ generate: Job }>(GENERATE_MUTATION, { input });
      job.start(generate.id);
    } catch (err) {
      errors.show(err as ApiError);
    } finally {
      if (!errors.element.querySelector('.countdown')) submit.disabled = false;
    }
  });

  return {
    element: h('div', { class: 'view' }, form, panel.element),
    setModel(m) {
      if (m?.maxImageSize) size.max = String(m.maxImageSize);
      // The demo model is tiny and CPU-friendly at 64 px; suggest that rather than a slow default.
      size.placeholder = m?.demo ? 'default (try 64)' : 'model default';
    },
    follow: job.follow,
  };
}
