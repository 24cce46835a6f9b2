/**
 * Image-to-text: pick or drop an image, upload it straight to storage through a presigned PUT
 * (`createUpload`), queue `describe` with the upload id, and stream the text as it is decoded.
 */
import { ApiError } from '../lib/api-error.ts';
import type { GraphQLClient } from '../lib/graphql-client.ts';
import { CREATE_UPLOAD_MUTATION, DESCRIBE_MUTATION, type Job, type Upload } from '../lib/operations.ts';
import { field, h } from './dom.ts';
import { createErrorBox } from './error-box.ts';
import type { JobFollowing } from './job-following.ts';
import { createJobPanel } from './job-panel.ts';

const TYPES = ['image/png', 'image/jpeg', 'image/webp'];

export type DescribeView = { element: HTMLElement; follow(jobId: string | undefined): void };

export function createDescribeView(client: GraphQLClient, following: JobFollowing): DescribeView {
  const file = h('input', { name: 'image', type: 'file', accept: TYPES.join(',') });
  const thumb = h('img', { class: 'thumb', alt: '', hidden: true });
  const chosen = h('p', { class: 'hint', 'aria-live': 'polite' }, 'No image chosen.');
  let picked: File | undefined;
  const pick = (f: File | undefined) => {
    picked = f;
    if (thumb.src) URL.revokeObjectURL(thumb.src);
    thumb.hidden = !f;
    if (f) {
      thumb.src = URL.createObjectURL(f);
      thumb.alt = `Chosen image: ${f.name}`;
    } else thumb.removeAttribute('src');
    chosen.textContent = f ? `${f.name} (${Math.ceil(f.size / 1024)} KiB)` : 'No image chosen.';
  };
  file.addEventListener('change', () => pick(file.files?.[0]));

  const drop = h(
    'div',
    { class: 'dropzone' },
    field('desc-image', 'Image (PNG, JPEG or WebP)', file, 'Choose a file, or drop one here.'),
    chosen,
    thumb,
  );
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('dragging');
    const f = e.dataTransfer?.files[0];
    if (f) pick(f);
  });

  const submit = h('button', { type: 'submit' }, 'Describe');
  const form = h(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'describe-h' },
    h('h2', { id: 'describe-h' }, 'Describe an image'),
    drop,
    h(
      'div',
      { class: 'grid' },
      field(
        'desc-prompt',
        'Question',
        h('input', { name: 'prompt', type: 'text', placeholder: 'Describe this image.' }),
        'Optional.',
      ),
      field(
        'desc-max-tokens',
        'Max tokens',
        h('input', { name: 'maxTokens', type: 'number', min: 1, step: 1, placeholder: 'default' }),
        'Optional.',
      ),
    ),
    submit,
  );
  const errors = createErrorBox(form, submit);
  form.append(errors.element);
  const panel = createJobPanel('desc', client, (e) =>
    errors.show(e instanceof ApiError ? e : new ApiError('INTERNAL', String(e))),
  );
  const job = following.slot('describe', panel, (e) => errors.show(e));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errors.clear();
    const img = picked;
    if (!img || !TYPES.includes(img.type))
      return errors.show(
        new ApiError('BAD_USER_INPUT', 'Choose a PNG, JPEG or WebP image.', {
          fields: [{ path: 'image', message: 'A PNG, JPEG or WebP image is required.' }],
        }),
      );
    const data = new FormData(form);
    submit.disabled = true;
    try {
      const { createUpload } = await client.request<{ createUpload: Upload }>(CREATE_UPLOAD_MUTATION, {
        contentType: img.type,
        bytes: img.size,
      });
      chosen.textContent = `Uploading ${img.name}…`;
      const put = await fetch(createUpload.uploadUrl, {
        method: 'PUT',
        headers: { 'content-type': img.type },
        body: img,
      }).catch(() => undefined);
      if (!put?.ok)
        throw new ApiError('NETWORK', `The image upload failed${put ? ` (HTTP ${put.status})` : ''}.`);
      chosen.textContent = `${img.name} uploaded.`;
      const input: Record<string, unknown> = { uploadId: createUpload.id };
      const prompt = String(data.get('prompt') ?? '').trim();
      const maxTokens = String(data.get('maxTokens') ?? '').trim();
      if (prompt) input.prompt = prompt;
      if (maxTokens) input.maxTokens = Number.parseInt(maxTokens, 10);
      const { describe } = await client.request<{ describe: Job }>(DESCRIBE_MUTATION, { input });
      job.start(describe.id);
    } catch (err) {
      errors.show(err as ApiError);
    } finally {
      if (!errors.element.querySelector('.countdown')) submit.disabled = false;
    }
  });

  return { element: h('div', { class: 'view' }, form, panel.element), follow: job.follow };
}
