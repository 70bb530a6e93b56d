// details: the book's facts, as bookinfo's details service serves them.
import { serve, sendJson, sendText } from './lib.js';

serve('details', (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
  if (path === '/health') return sendText(res, 200, 'ok');
  const m = /^\/details\/(\d+)$/.exec(path);
  if (!m) return sendJson(res, 404, { error: 'not found' });
  sendJson(res, 200, {
    id: Number(m[1]),
    author: 'William Shakespeare',
    year: 1595,
    type: 'paperback',
    pages: 200,
    publisher: 'PublisherA',
    language: 'English',
    'ISBN-10': '1234567890',
    'ISBN-13': '123-1234567890',
  });
});
