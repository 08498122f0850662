/**
 * The JSON Schema of the payloads (schemas/heartbeat.schema.json), compiled once per message type
 * at module load. Validation runs only after the MAC has been checked, so its cost is paid for
 * authentic datagrams alone.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import schema from '../../schemas/heartbeat.schema.json' with { type: 'json' };
import { MESSAGE_TYPES, type MessageType } from './messages.js';

export const HEARTBEAT_SCHEMA_ID = schema.$id;

const ajv = new Ajv2020({ allErrors: false, strict: true });
ajv.addSchema(schema);

function compile(type: MessageType): ValidateFunction {
  const v = ajv.getSchema(`${HEARTBEAT_SCHEMA_ID}#/$defs/${type}`);
  if (!v) throw new Error(`heartbeat schema has no definition for ${type}`);
  return v;
}

/** One compiled validator per message type. */
export const payloadValidators: Readonly<Record<MessageType, ValidateFunction>> = Object.fromEntries(
  MESSAGE_TYPES.map((t) => [t, compile(t)]),
) as Record<MessageType, ValidateFunction>;
