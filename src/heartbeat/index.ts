/** Public face of the heartbeat protocol: types, keys, codec and replay window. */
export * from './messages.js';
export * from './keys.js';
export * from './codec.js';
export * from './replay.js';
