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

/**
 * Installs the SIGINT/SIGTERM handler. Call it before the first thing starts: until it is installed
 * Ctrl-C kills Node at once and leaves the (detached) lab processes running.
 */
export function installInterruptHandler(): void {
  if (installed) return;
  installed = true;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Registers `stop` until the returned function is called (call it once the thing has been stopped). */
export function stopOnInterrupt(stop: Stop): () => void {
  installInterruptHandler();
  stops.add(stop);
  return () => {
    stops.delete(stop);
  };
}

/**
 * Starts a thing, runs `body` with it and stops it afterwards, also when `body` throws or the bench
 * is interrupted meanwhile. Starting a lab takes seconds, so `start` gets `whileStarting` to register
 * a stop for what it has started so far (a lab's process group, handed over before its first
 * process): Ctrl-C during the start runs it, and so does a start that fails.
 */
export async function withStopped<T, R>(
  start: (whileStarting: (stop: Stop) => void) => Promise<T>,
  stop: (thing: T) => Promise<void>,
  body: (thing: T) => Promise<R>,
): Promise<R> {
  installInterruptHandler();
  const startingStops: Array<() => void> = [];
  const partial: Stop[] = [];
  const whileStarting = (s: Stop) => {
    partial.push(s);
    startingStops.push(stopOnInterrupt(s));
  };
  const dropStarting = () => startingStops.splice(0).forEach((unregister) => unregister());
  let thing: T;
  try {
    thing = await start(whileStarting);
  } catch (e) {
    try {
      await Promise.allSettled(partial.map(async (s) => s()));
    } finally {
      dropStarting();
    }
    throw e;
  }
  // One stop, whoever asks first (the signal or the finally below) and however often.
  let stopped: Promise<void> | null = null;
  const stopOnce = () => (stopped ??= stop(thing));
  const unregister = stopOnInterrupt(stopOnce);
  // The thing's own stop covers what the start registered.
  dropStarting();
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
