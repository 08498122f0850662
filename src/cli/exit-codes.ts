/** Exit codes shared by every subcommand, so scripts and systemd can tell failures apart. */
export const EXIT = {
  ok: 0,
  /** Something failed at run time (a process would not start, a peer did not answer). */
  failure: 1,
  /** The command line was wrong (commander reports these). */
  usage: 2,
  /** A config file was refused: nothing was started or changed. */
  badConfig: 3,
  /** Asked about something that is not there (no lab running, no such backend). */
  absent: 4,
  /** The controller's API could not be reached (not running, wrong address, no API configured). */
  unreachable: 5,
  /** The controller's API refused the token (missing or wrong). */
  unauthorized: 6,
} as const;

/** An error whose message is meant for the operator as it is (no stack trace). */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.failure) {
    super(message);
    this.exitCode = exitCode;
  }
}
