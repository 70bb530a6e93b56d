// reviews: two reviews of the book. v1 has no ratings; v2 adds black stars and v3 red ones,
// both from the ratings service (a gRPC call through the sidecar).
import { serve, sendJson, sendText, callGrpc, propagated, version } from './lib.js';

const STAR_COLOR = { v2: 'black', v3: 'red' }[version];
const REVIEWS = [
  { reviewer: 'Reviewer1', text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!' },
  { reviewer: 'Reviewer2', text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.' },
];

serve('reviews', async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
  if (path === '/health') return sendText(res, 200, 'ok');
  const m = /^\/reviews\/(\d+)$/.exec(path);
  if (!m) return sendJson(res, 404, { error: 'not found' });
  let reviews = REVIEWS.map((r) => ({ ...r }));
  if (STAR_COLOR) {
    let ratings;
    try {
      ratings = (await callGrpc('ratings', '/bookinfo.Ratings/Get', { id: Number(m[1]) }, propagated(req))).ratings ?? {};
    } catch (err) {
      console.error(`reviews: ratings unavailable: ${err.message}`);
    }
    reviews = reviews.map((r) => ({
      ...r,
      rating: ratings ? { stars: ratings[r.reviewer], color: STAR_COLOR } : { error: 'Ratings service is currently unavailable' },
    }));
  }
  sendJson(res, 200, { id: m[1], podname: `reviews-${version}`, clustername: 'null', reviews });
});
