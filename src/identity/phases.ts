// The three phases of a trust anchor rotation (add the new anchor, switch the issuer to it, remove the old one).
export const PHASES = ['add', 'switch', 'remove'] as const;
export type Phase = (typeof PHASES)[number];
