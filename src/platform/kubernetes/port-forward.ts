// A local port forwarded to a pod's port, as `kubectl port-forward` does: a listener on 127.0.0.1 (a free port), and
// for each connection a WebSocket to the API server's pods/portforward (client-node's PortForward), so the
// kubeconfig's credentials and RBAC (pods/portforward: get for the WebSocket, create for SPDY) apply. Closed with the command.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';

export interface Forward {
  port: number;
  /** Why the last forwarded connection failed (the API server's refusal or the kubelet's error), if it did. */
  lastError(): string | undefined;
  close(): Promise<void>;
}

/** The WebSocket client-node hands back (the `ws` package's), as much as this file uses. */
interface ForwardSocket {
  on(event: 'close', fn: () => void): void;
  close(): void;
}

/** At most this many forwarded connections at once: the CLI's own clients use a few. */
const MAX_CONNECTIONS = 32;

export async function forwardPort(kc: KubeConfig, namespace: string, pod: string, targetPort: number): Promise<Forward> {
  const { PortForward } = await import('@kubernetes/client-node');
  let last: string | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    if (sockets.size >= MAX_CONNECTIONS) return void socket.destroy();
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    // The kubelet's errors (e.g. nothing listens on the port) arrive on the error channel; they end the connection.
    const errors = new Writable({
      write(chunk: Buffer, _enc, done) {
        // The channel's first message (the port) arrives here empty.
        if (!chunk.length) return done();
        last = `port-forward to ${namespace}/${pod}:${targetPort}: ${chunk.toString('utf8').trim()}`;
        socket.destroy();
        done();
      },
    });
    new PortForward(kc, true).portForward(namespace, pod, [targetPort], socket, errors, socket).then((ws) => {
      const s = ws as unknown as ForwardSocket;
      s.on('close', () => socket.destroy());
      socket.once('close', () => s.close());
    }, (err: Error) => {
      last = `port-forward to ${namespace}/${pod}:${targetPort}: ${err.message}`;
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    lastError: () => last,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
