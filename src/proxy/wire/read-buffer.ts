// Sockets the proxy opens itself (to its app, to an upstream) read into one preallocated buffer
// (net's `onread`): a plain socket otherwise gets a fresh 64 KiB buffer per read (malloc, realloc
// to the bytes read, freed at a later GC: ~100 MB RSS under bulk TCP). Socket reads run one at a
// time, so one buffer serves them all; whatever must outlive the read callback is copied out.
// Accepted sockets (net.Server, tls.Server) have no `onread` option in Node 20; tls.connect has.

export const READ_BUF = Buffer.allocUnsafeSlow(64 * 1024);

/** `b` as it may be kept past the read callback: copied if it is a view of READ_BUF. */
export function keep(b: Buffer): Buffer {
  return b.buffer === READ_BUF.buffer ? Buffer.from(b) : b;
}
