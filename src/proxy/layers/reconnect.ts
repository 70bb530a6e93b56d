// A connection (tcp.ts) whose tunnel reached no peer (unreachable, failed verification, a stream
// refused at its limit) goes to another endpoint through the layers below: nothing was sent, so it
// is safe whatever the protocol, up to as many tries as a request that never reached a server.
import type { Layer } from '../exchange.js';
import { neverSent } from '../errors.js';
import { MAX_UNSENT_ATTEMPTS } from './retry.js';

export interface Reconnecting {
  attempts: number;
  again: boolean;
  /** The client went away: nobody to connect for. */
  readonly gone: boolean;
}

export function reconnect<X extends Reconnecting>(): Layer<X> {
  const layer: Layer<X> = (next) => (c) => {
    c.attempts = 1;
    next(c);
  };
  layer.report = (above, next) => ({
    response: above.response,
    failed(c, err, code, reused) {
      if (neverSent(code) && c.attempts < MAX_UNSENT_ATTEMPTS) return (c.again = true);
      return above.failed(c, err, code, reused);
    },
    // The next try starts once this one is over below (its endpoint's load released).
    done(c) {
      if (!c.again || c.gone) {
        c.again = false;
        return above.done(c);
      }
      c.again = false;
      c.attempts++;
      next(c);
    },
  });
  return layer;
}
