// Raw TCP clients for the opaque-TCP and egress tests: a whole exchange (write, half-close, read to
// the end), and a CONNECT through a sidecar's outbound listener as an HTTP proxy client makes it.
import net from 'node:net';
import { createServer } from 'node:net';

export interface Exchanged {
  data: Buffer;
  /** The server's side ended cleanly (FIN), rather than a reset or an error. */
  ended: boolean;
  error?: string;
}

/** Sends `payload`, half-closes, and reads until the other side ends (or `timeoutMs`). */
export function exchange(sock: net.Socket, payload: Buffer | string, timeoutMs = 10_000, already: Buffer[] = []): Promise<Exchanged> {
  return new Promise((resolve) => {
    const got: Buffer[] = [...already];
    let ended = false;
    let error: string | undefined;
    const timer = setTimeout(() => sock.destroy(new Error('timed out')), timeoutMs);
    sock.on('data', (c: Buffer) => got.push(c));
    sock.on('end', () => {
      ended = true;
    });
    sock.on('error', (e) => (error = e.message));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(got), ended, error });
    });
    sock.end(payload);
    sock.resume();
  });
}

export function connectTo(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

export interface Connected {
  status: number;
  head: string;
  sock: net.Socket;
  /** Bytes after the response head (the tunnel's first bytes, or a refusal's body). */
  rest: Buffer;
}

/** `CONNECT authority` through an HTTP proxy at `proxy` (host:port); resolves once its response head came. */
export function connectVia(proxy: string, authority: string): Promise<Connected> {
  const [host, port] = [proxy.slice(0, proxy.lastIndexOf(':')), Number(proxy.slice(proxy.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, allowHalfOpen: true });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => sock.destroy(new Error('no answer to CONNECT')), 10_000);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      sock.removeListener('data', onData);
      sock.pause();
      const head = buf.toString('latin1', 0, end);
      resolve({ status: Number(head.slice(9, 12)), head, sock, rest: buf.subarray(end + 4) });
    };
    sock.on('data', onData);
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

/** A plain TCP echo server on 127.0.0.1 (outside the mesh), half-close aware. */
export async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      for (const s of socks) s.destroy();
      server.close(() => r());
    }),
  };
}
