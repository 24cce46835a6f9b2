/**
 * The Harmon playground: API key, generate, describe and history views, routed by the URL hash
 * (`#/generate/<jobId>` follows that job, so reloads and links resume it).
 */
import './styles.css';
import { createGraphQLClient } from './lib/graphql-client.ts';
import { createSession, hashFor, parseHash, type Tab } from './lib/session.ts';
import { createDescribeView } from './ui/describe-view.ts';
import { h } from './ui/dom.ts';
import { createGenerateView } from './ui/generate-view.ts';
import { createHistoryView } from './ui/history-view.ts';
import { createJobFollowing } from './ui/job-following.ts';
import { createKeyPanel } from './ui/key-panel.ts';

const session = createSession(localStorage);
const wsUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/graphql`;
const client = createGraphQLClient({ httpUrl: '/graphql', wsUrl, getKey: session.apiKey });
const following = createJobFollowing(client, session);

const generate = createGenerateView(client, following);
const describe = createDescribeView(client, following);
const historyView = createHistoryView(client);
// A new key is another tenant: its jobs are not the ones on screen, so stop following them and
// reload the view for the new tenant.
const keyPanel = createKeyPanel(
  client,
  session,
  (m) => generate.setModel(m),
  () => {
    session.saveJob('generate', undefined);
    session.saveJob('describe', undefined);
    history.replaceState(null, '', hashFor(parseHash(location.hash).tab));
    route();
  },
);

const views: Record<Tab, HTMLElement> = {
  generate: generate.element,
  describe: describe.element,
  history: historyView.element,
};
const labels: Record<Tab, string> = { generate: 'Generate', describe: 'Describe', history: 'History' };
const links = (Object.keys(views) as Tab[]).map((tab) =>
  h('a', { href: hashFor(tab), 'data-tab': tab }, labels[tab]),
);

function route(): void {
  const parsed = parseHash(location.hash);
  const { tab } = parsed;
  // A view opened without a job id shows the job it last followed, so switching views keeps it.
  const jobId = parsed.jobId ?? (tab === 'history' ? undefined : session.lastJobId(tab));
  if (jobId && !parsed.jobId) history.replaceState(null, '', hashFor(tab, jobId));
  for (const [name, el] of Object.entries(views)) el.hidden = name !== tab;
  for (const a of links) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (tab === 'generate') generate.follow(jobId);
  if (tab === 'describe') describe.follow(jobId);
  if (tab === 'history') historyView.refresh();
}

document
  .getElementById('app')
  ?.replaceChildren(
    h(
      'header',
      { class: 'site-header' },
      h('h1', {}, 'Harmon playground'),
      h('p', { class: 'hint' }, 'Text to image and image to text over the GraphQL API, live.'),
    ),
    keyPanel.demoBanner,
    keyPanel.element,
    h('nav', { 'aria-label': 'Views' }, h('ul', {}, ...links.map((a) => h('li', {}, a)))),
    ...Object.values(views),
  );
window.addEventListener('hashchange', route);
route();
void keyPanel.check();
