/**
 * The benchmarks' one argument parser: every bench declares its options on a commander Command made
 * here (`--quick` is common to all), and parse errors throw an Error naming the option instead of
 * exiting, so main.ts reports them like any other failure and a test can assert them.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';

/** Thrown after `--help` printed a bench's options: main.ts exits 0 on it. */
export class BenchHelpShown extends Error {}

/** A bad command line: main.ts prints its message alone (no stack) and exits 1. */
export class BenchUsageError extends Error {}

/** A bench's command line: `--quick` plus what the bench adds before calling parseBenchArgs. */
export function benchCommand(name: string, what: string): Command {
  return new Command(name)
    .description(what)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined })
    .allowExcessArguments(false)
    .option('--quick', 'a reduced run (the CI and smoke-test size)', false);
}

/** Parses `args` (the words after the bench's name) into the command's options. */
export function parseBenchArgs<T extends object>(
  cmd: Command,
  args: readonly string[],
): T & { quick: boolean } {
  try {
    cmd.parse([...args], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help') throw new BenchHelpShown();
      throw new BenchUsageError(`${cmd.name()}: ${e.message.replace(/^error: /, '')}`, { cause: e });
    }
    throw e;
  }
  return cmd.opts<T & { quick: boolean }>();
}

/** Option parser: a number in [min, max] (an integer with `integer`). */
export function numberIn(min: number, max: number, integer = false): (raw: string) => number {
  return (raw) => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max) {
      throw new InvalidArgumentError(`expected a number ${min}..${max}`);
    }
    if (integer && !Number.isInteger(v)) throw new InvalidArgumentError(`expected an integer ${min}..${max}`);
    return v;
  };
}

/** Option parser: comma-separated numbers, each in [min, max] (integers with `integer`). */
export function numberListIn(min: number, max: number, integer = false): (raw: string) => number[] {
  const one = numberIn(min, max, integer);
  return (raw) => raw.split(',').map((s) => one(s.trim()));
}

/** Option parser: comma-separated names, each one of `known`. */
export function namesOf<T extends string>(known: readonly T[]): (raw: string) => T[] {
  return (raw) =>
    raw.split(',').map((s) => {
      const name = s.trim();
      if (!(known as readonly string[]).includes(name)) {
        throw new InvalidArgumentError(`unknown ${JSON.stringify(name)} (known: ${known.join(', ')})`);
      }
      return name as T;
    });
}
