/**
 * The error area of a form: a role=alert box with what to do, the server's sentence, field
 * messages next to their fields, and for RATE_LIMITED / QUOTA_EXCEEDED a countdown that keeps
 * the submit button disabled until `retryAfter` has passed (so users do not hammer the limit);
 * waits longer than two minutes (a monthly quota) are shown as the time they end.
 */
import { type ApiError, describeError } from '../lib/api-error.ts';
import { clearFieldErrors, fill, h, setFieldError } from './dom.ts';

/** Longer waits are shown as a time, with the button left enabled. */
const MAX_COUNTDOWN_S = 120;

export type ErrorBox = { element: HTMLElement; show(e: ApiError): void; clear(): void };

export function createErrorBox(form: HTMLFormElement, submit: HTMLButtonElement): ErrorBox {
  const element = h('div', { class: 'error-box', role: 'alert', hidden: true });
  let timer: ReturnType<typeof setInterval> | undefined;

  const stopCountdown = () => {
    clearInterval(timer);
    timer = undefined;
    submit.disabled = false;
  };

  return {
    element,
    show(e) {
      stopCountdown();
      clearFieldErrors(form);
      const view = describeError(e);
      const unplaced: string[] = [];
      for (const [name, message] of Object.entries(view.fields))
        if (!setFieldError(form, name, message)) unplaced.push(`${name}: ${message}`);
      const countdown = h('p', { class: 'countdown' });
      fill(
        element,
        h('p', { class: 'error-title' }, h('strong', {}, view.title), ` (${e.code})`),
        h('p', {}, view.detail),
        unplaced.length ? h('ul', {}, ...unplaced.map((u) => h('li', {}, u))) : null,
        view.retryAfter !== undefined ? countdown : null,
      );
      element.dataset.code = e.code;
      element.hidden = false;
      if (view.retryAfter !== undefined && view.retryAfter > MAX_COUNTDOWN_S) {
        // A quota resets at the start of next month: name the time instead of counting to it.
        const at = new Date(Date.now() + view.retryAfter * 1000);
        countdown.textContent = `You can try again after ${at.toLocaleString()}.`;
      } else if (view.retryAfter !== undefined) {
        let left = Math.max(1, Math.ceil(view.retryAfter));
        const tick = () => {
          if (left <= 0) {
            countdown.textContent = 'You can try again now.';
            return stopCountdown();
          }
          countdown.textContent = `You can try again in ${left} s.`;
          left -= 1;
        };
        submit.disabled = true;
        tick();
        timer = setInterval(tick, 1000);
      }
      // Move focus to the first invalid field so keyboard users land where the fix is needed.
      const firstInvalid = form.querySelector<HTMLElement>('[aria-invalid="true"]');
      firstInvalid?.focus();
    },
    clear() {
      stopCountdown();
      clearFieldErrors(form);
      element.hidden = true;
      element.replaceChildren();
      delete element.dataset.code;
    },
  };
}
