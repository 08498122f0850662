/** Resolves after `ms` milliseconds: the one pause every poll loop and start-up wait uses. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
