// ratings: the stars each reviewer gave, read by reviews v2 and v3.
import { serve, sendJson, sendText } from './lib.js';

serve('ratings', (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
  if (path === '/health') return sendText(res, 200, 'ok');
  const m = /^\/ratings\/(\d+)$/.exec(path);
  if (!m) return sendJson(res, 404, { error: 'not found' });
  sendJson(res, 200, { id: Number(m[1]), ratings: { Reviewer1: 5, Reviewer2: 4 } });
});
