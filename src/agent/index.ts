/** The agent: `runAgent(config, logger)` is what `sipweigh agent --config FILE` calls. */
export {
  runAgent,
  AGENT_SOFTWARE,
  type AgentHandle,
  type AgentOptions,
  type AgentCounters,
} from './agent.js';
