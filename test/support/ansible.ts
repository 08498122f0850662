/** What the Ansible tests share: where the role lives, and an environment that keeps every run inside its temp dir. */
import { join } from 'node:path';
import { REPO_ROOT } from './harness.js';

export const ANSIBLE_DIR = join(REPO_ROOT, 'scripts/ansible');

/** ansible-playbook's environment for a run whose home, temp files and output stay under `work`. */
export function ansibleEnv(work: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: join(work, 'home'),
    ANSIBLE_HOME: join(work, 'home/.ansible'),
    ANSIBLE_LOCAL_TEMP: join(work, 'ansible-tmp'),
    ANSIBLE_REMOTE_TEMP: join(work, 'ansible-tmp'),
    ANSIBLE_CONFIG: join(ANSIBLE_DIR, 'ansible.cfg'),
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    NO_COLOR: '1',
  };
}
