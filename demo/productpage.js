// productpage: the bookinfo front end. Calls details and reviews in parallel through the sidecar
// and renders them, naming the reviews version that answered so routing rules are visible.
import { serve, sendJson, sendText, callService, propagated } from './lib.js';

const BOOK = {
  title: 'The Comedy of Errors',
  summary: "Wikipedia Summary: The Comedy of Errors is one of William Shakespeare's early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.",
};
// Names end up in a request header and a cookie, so only plain ones are accepted.
const USER_NAME = /^[\w.@-]{1,64}$/;

serve('productpage', async (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method !== 'GET') return sendText(res, 405, 'method not allowed\n');
  switch (url.pathname) {
    case '/health':
      return sendText(res, 200, 'ok');
    case '/':
    case '/productpage': {
      const { user, setCookie } = signedIn(req, url);
      const { details, reviews } = await fetchProduct(req, user);
      res.setHeader('cache-control', 'no-store');
      if (setCookie) res.setHeader('set-cookie', setCookie);
      return sendText(res, 200, page(user, details, reviews), 'text/html; charset=utf-8');
    }
    case '/api/v1/products/0': {
      const { user } = signedIn(req, url);
      const { details, reviews } = await fetchProduct(req, user);
      const json = (r) => (r.status === 'fulfilled' ? r.value : { error: r.reason.message });
      return sendJson(res, 200, { details: json(details), reviews: json(reviews) });
    }
    default:
      return sendText(res, 404, 'not found\n');
  }
});

/** Who the user is: `?u=NAME` (also remembered in a cookie; `?u=` signs out), else cookie `user`, else an `end-user` header. */
function signedIn(req, url) {
  const q = url.searchParams.get('u');
  if (q !== null) {
    const user = USER_NAME.test(q) ? q : '';
    const setCookie = user ? `user=${user}; Path=/; SameSite=Lax` : 'user=; Path=/; Max-Age=0; SameSite=Lax';
    return { user, setCookie };
  }
  const cookie = /(?:^|;\s*)user=([^;]*)/.exec(req.headers.cookie ?? '')?.[1];
  const header = req.headers['end-user'];
  const user = [cookie, header].find((u) => typeof u === 'string' && USER_NAME.test(u)) ?? '';
  return { user };
}

async function fetchProduct(req, user) {
  const headers = propagated(req);
  delete headers['end-user'];
  if (user) headers['end-user'] = user;
  const [details, reviews] = await Promise.allSettled([
    callService('details', '/details/0', headers),
    callService('reviews', '/reviews/0', headers),
  ]);
  for (const [name, r] of [['details', details], ['reviews', reviews]]) {
    if (r.status === 'rejected') console.error(`productpage: ${name} unavailable: ${r.reason.message}`);
  }
  return { details, reviews };
}

const esc = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(user, details, reviews) {
  const account = user
    ? `<p class="user">signed in as <b>${esc(user)}</b> · <a href="/productpage?u=">sign out</a></p>`
    : `<form class="user" action="/productpage" method="get">Sign in as <input name="u" placeholder="jason" size="10"> <button>Sign in</button></form>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; color: #222; }
  header { background: #24292e; color: #fff; padding: .8em 2em; display: flex; justify-content: space-between; align-items: center; }
  header a { color: #9cf; }
  main { padding: 1em 2em; max-width: 60em; }
  .cols { display: flex; gap: 3em; flex-wrap: wrap; }
  .cols > section { flex: 1; min-width: 18em; }
  dt { font-weight: bold; margin-top: .4em; }
  blockquote { border-left: 4px solid #ccc; margin: 1em 0; padding: .2em 1em; }
  .stars { font-size: 1.3em; }
  .error { color: #b00; }
  .served { color: #555; font-size: .9em; }
</style>
</head>
<body>
<header><b>BookInfo Sample</b>${account}</header>
<main>
<h1>${esc(BOOK.title)}</h1>
<p>${esc(BOOK.summary)}</p>
<div class="cols">
<section class="details">
<h2>Book Details</h2>
${details.status === 'fulfilled' ? detailsHtml(details.value) : '<p class="error">Sorry, product details are currently unavailable for this book.</p>'}
</section>
<section class="reviews">
<h2>Book Reviews</h2>
${reviews.status === 'fulfilled' ? reviewsHtml(reviews.value) : '<p class="error">Sorry, product reviews are currently unavailable for this book.</p>'}
</section>
</div>
</main>
</body>
</html>
`;
}

function detailsHtml(d) {
  const rows = [['Type', d.type], ['Pages', d.pages], ['Publisher', d.publisher], ['Language', d.language], ['ISBN-10', d['ISBN-10']], ['ISBN-13', d['ISBN-13']]];
  return `<p>by ${esc(d.author ?? 'unknown')}, ${esc(d.year ?? '')}</p>
<dl>
${rows.map(([k, v]) => `<dt>${k}:</dt><dd>${esc(v ?? '')}</dd>`).join('\n')}
</dl>`;
}

function reviewsHtml(r) {
  const servedBy = r.podname ?? `reviews-${r.version ?? 'unknown'}`;
  const items = (Array.isArray(r.reviews) ? r.reviews : []).map((rv) => `<blockquote>
<p>${esc(rv.text ?? '')}</p>
<small>${esc(rv.reviewer ?? '')}</small>
${rating(rv.rating)}
</blockquote>`);
  return `${items.join('\n')}
<p class="served">Reviews served by: <b>${esc(servedBy)}</b></p>`;
}

/** Five stars, filled up to the rating, in the color reviews chose; nothing when reviews sent no rating (v1). */
function rating(r) {
  if (!r) return '';
  if (r.error) return `<p class="error">${esc(r.error)}</p>`;
  const n = Math.max(0, Math.min(5, Math.round(Number(r.stars) || 0)));
  const color = /^[a-z]+$/i.test(r.color ?? '') ? r.color : 'black';
  return `<span class="stars" style="color: ${color}" title="${n} of 5 stars">${'★'.repeat(n)}${'☆'.repeat(5 - n)}</span>`;
}
