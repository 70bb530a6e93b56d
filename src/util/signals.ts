// Foreground runtimes run until a signal asks them to stop.
export function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => resolve());
  });
}
