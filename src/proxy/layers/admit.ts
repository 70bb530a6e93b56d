// The inbound side's bound on app connections (gate.ts): an exchange runs the layers below once
// the gate admits it, and gives its slot back when its try is over.
import type { Layer } from '../exchange.js';
import type { Gate } from '../gate.js';

export const admit = (gate: Gate): Layer => {
  const layer: Layer = (next) => {
    gate.run = next;
    return (ex) => gate.enter(ex);
  };
  layer.report = (above) => ({
    response: above.response,
    failed: above.failed,
    done(ex) {
      gate.leave(ex);
      above.done(ex);
    },
  });
  return layer;
};
