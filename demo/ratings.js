// ratings: the stars each reviewer gave, read by reviews v2 and v3 over gRPC (bookinfo.Ratings/Get, unary,
// JSON messages); GET /ratings/N answers the same over HTTP/1.1.
import { serve, sendJson, sendText } from './lib.js';

const ratingsOf = (id) => ({ id, ratings: { Reviewer1: 5, Reviewer2: 4 } });

serve('ratings', (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
  if (path === '/health') return sendText(res, 200, 'ok');
  const m = /^\/ratings\/(\d+)$/.exec(path);
  if (!m) return sendJson(res, 404, { error: 'not found' });
  sendJson(res, 200, ratingsOf(Number(m[1])));
}, {
  '/bookinfo.Ratings/Get': async (req) => ratingsOf(Number(req.id) || 0),
});
