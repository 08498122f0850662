/**
 * One registry of what the running bench must stop when it is interrupted: every lab, process group
 * or child process a bench starts registers its stop here for as long as it runs. Ctrl-C or SIGTERM
 * runs every registered stop (each process by its PID, as the labs do), then exits; a second signal
 * exits at once.
 */
type Stop = () => Promise<void> | void;

const stops = new Set<Stop>();
let installed = false;
let stopping = false;

/** How long the stops get before the bench exits anyway. */
const STOP_DEADLINE_MS = 15_000;

function onSignal(sig: NodeJS.Signals): void {
  const code = sig === 'SIGINT' ? 130 : 143;
  if (stopping) process.exit(code);
  stopping = true;
  process.stderr.write(`${sig}: stopping ${stops.size} lab(s) the bench started\n`);
  const all = Promise.allSettled([...stops].map(async (s) => s()));
  const deadline = new Promise((r) => setTimeout(r, STOP_DEADLINE_MS).unref());
  void Promise.race([all, deadline]).finally(() => process.exit(code));
}

/** Registers `stop` until the returned function is called (call it once the thing has been stopped). */
export function stopOnInterrupt(stop: Stop): () => void {
  if (!installed) {
    installed = true;
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  stops.add(stop);
  return () => {
    stops.delete(stop);
  };
}

/**
 * Starts a thing, runs `body` with it and stops it afterwards, also when `body` throws or the bench
 * is interrupted meanwhile.
 */
export async function withStopped<T, R>(
  start: () => Promise<T>,
  stop: (thing: T) => Promise<void>,
  body: (thing: T) => Promise<R>,
): Promise<R> {
  const thing = await start();
  // One stop, whoever asks first (the signal or the finally below) and however often.
  let stopped: Promise<void> | null = null;
  const stopOnce = () => (stopped ??= stop(thing));
  const unregister = stopOnInterrupt(stopOnce);
  try {
    return await body(thing);
  } finally {
    try {
      await stopOnce();
    } finally {
      unregister();
    }
  }
}

/** Registered stops (for tests). */
export function pendingStops(): number {
  return stops.size;
}
