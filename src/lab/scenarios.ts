/** The sipp scenarios shipped with sipweigh (scripts/sipp/): the lab's defaults, reused by tests and benchmarks. */
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/package-root.js';

const dir = join(PACKAGE_ROOT, 'scripts', 'sipp');

export const LAB_SCENARIOS = {
  /** Answers every INVITE 200 at once, echoing Record-Route. */
  uas: join(dir, 'uas.xml'),
  /** INVITE to the LB; ACK and BYE along the Record-Route set; INVITE→200 is response time 1. */
  uac: join(dir, 'uac.xml'),
  /** Like uac, but a 503 from the LB (admission control) is an expected outcome; tell them apart with -trace_counts. */
  uacAdmission: join(dir, 'uac-admission.xml'),
  /** Rejects every INVITE with 486 (an example of an operator's own UAS). */
  busyUas: join(dir, 'uas-busy.xml'),
} as const;
